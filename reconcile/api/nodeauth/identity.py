"""Which node a user is (upstream's pkg/auth/nodeidentifier): `system:node:<name>` in the group
`system:nodes`. Both are required; a user with only one of them is not a node."""

from __future__ import annotations

from reconcile.api import authn

NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"


def node_identity(user: authn.UserInfo) -> tuple[str, bool]:
    """(node name, is a node). A node whose name is empty is a node nobody can match to an object:
    the authorizer and NodeRestriction refuse it."""
    if NODES_GROUP not in user.groups or not user.name.startswith(NODE_USER_PREFIX):
        return "", False
    return user.name[len(NODE_USER_PREFIX):], True
