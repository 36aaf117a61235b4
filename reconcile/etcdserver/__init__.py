"""The embedded etcd member that `reconcile up`, the test kit and tests start (internal)."""
