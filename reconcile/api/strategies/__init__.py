"""Per-resource strategies: the one place that knows kinds by name.

`StrategySet.for_resource` gives `rest` the strategy of a resource: a registered one for the
built-in kinds with rules of their own, `BuiltinStrategy` for the other built-ins, `Strategy`
for custom resources.
"""

from __future__ import annotations

from reconcile.api import registry
from reconcile.api.strategies import base


class StrategySet:
    def __init__(self, by_resource: dict[tuple[str, str], base.Strategy]) -> None:
        self._by_resource = dict(by_resource)  # (group, plural) -> strategy
        self._generic = base.Strategy()
        self._builtin = base.BuiltinStrategy()

    def for_resource(self, resource: registry.Resource) -> base.Strategy:
        found = self._by_resource.get((resource.group, resource.plural))
        if found is not None:
            return found
        return self._builtin if resource.builtin else self._generic
