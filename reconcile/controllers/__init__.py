"""The built-in controllers run by `reconcile controller-manager` (internal)."""
