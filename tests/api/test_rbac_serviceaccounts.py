"""The ServiceAccounts controller under RBAC: the controller-manager, as system:kube-controller-manager
with only the default policy's roles, gives every new namespace its `default` account (the
`system:controller:service-account-controller` role is enough)."""

from __future__ import annotations

from tests import support
from tests.api import helpers
from tests.api.test_rbac import Cluster, cluster  # noqa: F401 - the module's RBAC cluster fixture


def test_default_accounts_are_made_with_the_controllers_own_role(cluster: Cluster) -> None:  # noqa: F811
    ns = helpers.unique("rbac-sa")
    cluster.admin("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    def made() -> bool:
        return cluster.req("admin", "GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default").status_code == 200

    try:
        support.wait_for(made, timeout=30, what="the default ServiceAccount")
    except AssertionError:
        raise AssertionError(cluster.manager_log.read_text()[-4000:]) from None
    assert "forbidden" not in cluster.manager_log.read_text().lower()
    role = cluster.admin("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/"
                                "system:controller:service-account-controller")
    assert {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["create"]} in role["rules"]
