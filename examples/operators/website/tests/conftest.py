"""Running these tests on their own: `pytest examples/operators/website/tests` starts a real
etcd and API server through the test kit's fixture."""

from reconcile.testing import reconcile_cluster  # noqa: F401  (the fixture)
