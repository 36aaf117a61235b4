"""The REST verbs, written once for the sync and the async client.

Each verb builds its request with `wire` and hands it to the client's `_call`: `Client._call`
returns the decoded answer, `AsyncClient._call` a coroutine of it, so `client.get(...)` and
`await aclient.get(...)` share one definition.
"""

from __future__ import annotations

from typing import Any

from reconcile.client import options as options_mod
from reconcile.client import wire


class Verbs:
    """get, list, create, replace, patch, delete, delete_collection over `self._call`."""

    def _call(self, spec: wire.RequestSpec) -> Any:
        raise NotImplementedError

    def get(
        self,
        api_version: str,
        plural: str,
        name: str,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> Any:
        return self._call(
            wire.get_request(api_version, plural, name, namespace=namespace, subresource=subresource)
        )

    def list(
        self,
        api_version: str,
        plural: str,
        *,
        namespace: str | None = None,
        options: options_mod.ListOptions | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> Any:
        """One page of a list; the keywords are a shorthand laid over `options`."""
        options = options_mod.ListOptions.of(
            options,
            label_selector=label_selector,
            field_selector=field_selector,
            limit=limit,
            continue_=continue_,
            resource_version=resource_version,
            resource_version_match=resource_version_match,
        )
        return self._call(wire.list_request(api_version, plural, namespace=namespace, options=options))

    def create(
        self,
        api_version: str,
        plural: str,
        obj: dict,
        *,
        namespace: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        field_validation: str | None = None,
    ) -> Any:
        return self._call(
            wire.create_request(
                api_version,
                plural,
                obj,
                namespace=namespace,
                dry_run=dry_run,
                field_manager=field_manager,
                field_validation=field_validation,
            )
        )

    def replace(
        self,
        api_version: str,
        plural: str,
        obj: dict,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        field_validation: str | None = None,
    ) -> Any:
        return self._call(
            wire.replace_request(
                api_version,
                plural,
                obj,
                namespace=namespace,
                subresource=subresource,
                dry_run=dry_run,
                field_manager=field_manager,
                field_validation=field_validation,
            )
        )

    def patch(
        self,
        api_version: str,
        plural: str,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: wire.PatchType = "merge",
        field_manager: str | None = None,
        force: bool = False,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str | None = None,
    ) -> Any:
        return self._call(
            wire.patch_request(
                api_version,
                plural,
                name,
                patch,
                namespace=namespace,
                patch_type=patch_type,
                field_manager=field_manager,
                force=force,
                subresource=subresource,
                dry_run=dry_run,
                field_validation=field_validation,
            )
        )

    def delete(
        self,
        api_version: str,
        plural: str,
        name: str,
        *,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
        preconditions: dict[str, str] | None = None,
    ) -> Any:
        return self._call(
            wire.delete_request(
                api_version,
                plural,
                name,
                namespace=namespace,
                propagation_policy=propagation_policy,
                grace_period_seconds=grace_period_seconds,
                dry_run=dry_run,
                preconditions=preconditions,
            )
        )

    def delete_collection(
        self,
        api_version: str,
        plural: str,
        *,
        namespace: str | None = None,
        options: options_mod.ListOptions | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        propagation_policy: str | None = None,
        dry_run: bool = False,
    ) -> Any:
        """Delete what a list with these selectors would return."""
        options = options_mod.ListOptions.of(options, label_selector=label_selector, field_selector=field_selector)
        return self._call(
            wire.delete_collection_request(
                api_version,
                plural,
                namespace=namespace,
                options=options,
                propagation_policy=propagation_policy,
                dry_run=dry_run,
            )
        )
