"""The cluster's keys and certificates (internal).

`certs` is the one module that uses the `cryptography` package (keys, certificates, CSRs, client
verification); `files` writes them private and atomically; `cluster` lays a whole cluster's PKI out
under a state dir and keeps it valid. Layer 1: the CLI (`reconcile up`), the API server (its x509
authenticator), the test kit and the node agent use it; it imports nothing of ours but `core`.
"""
