"""The example operator's own tests (examples/operators/website/tests), run in the root suite.

`reconcile_cluster` comes from tests/sdk/conftest.py (the shared API server) here; run on their
own, the example's conftest starts a fresh etcd + API server through `reconcile.testing`.
"""

from examples.operators.website.tests.test_website import (  # noqa: F401
    test_website_renders_children_reports_ready_and_cleans_up,
)
