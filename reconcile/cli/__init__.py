"""The `reconcile` command (internal; its interface is the command line)."""
