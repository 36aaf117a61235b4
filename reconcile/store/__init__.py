"""etcd as storage (internal; only `reconcile.api` uses it)."""
