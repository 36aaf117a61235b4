"""The API client (public): sync and async clients, watches, informers and kubeconfig handling."""
