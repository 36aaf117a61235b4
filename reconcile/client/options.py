"""`ListOptions`: what selects, pages and positions a list or a watch, written once.

Upstream's `metav1.ListOptions`. Every layer that lists or watches (the verbs, the request
builders, the sans-I/O list/watch core, informers, the CLI) passes one of these instead of
retyping the same keyword arguments, so a new option (say `resourceVersionMatch`) is added in
one place and reaches the wire everywhere. Frozen: a flow derives the options of its next
request with `dataclasses.replace`, never by mutating the caller's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# resourceVersionMatch values upstream accepts (lists only).
NOT_OLDER_THAN = "NotOlderThan"
EXACT = "Exact"


@dataclass(frozen=True)
class ListOptions:
    """Query parameters of a list or watch; `None` means "not sent" (the server's default)."""

    label_selector: str | None = None  # labelSelector, e.g. `app=web,tier!=db`
    field_selector: str | None = None  # fieldSelector, e.g. `spec.nodeName=n1`
    limit: int | None = None  # lists: page size (None or 0: everything in one answer)
    continue_: str | None = None  # lists: the token the previous page handed out
    resource_version: str | None = None  # None: most recent; "0": any cached state; else a revision
    resource_version_match: str | None = None  # lists: NotOlderThan or Exact (needs resource_version)
    timeout_seconds: int | None = None  # the server ends the call after this many seconds
    allow_bookmarks: bool = True  # watches: BOOKMARK events report progress while idle

    @classmethod
    def of(cls, options: ListOptions | None = None, **given: Any) -> ListOptions:
        """`options` with every keyword that is not None laid over it.

        The convenience keywords of the client methods (`label_selector=...`) build options
        through here, so `client.list(..., label_selector="a")` and
        `client.list(..., options=ListOptions(label_selector="a"))` send the same request.
        """
        base = options or cls()
        changes = {name: value for name, value in given.items() if value is not None}
        unknown = set(changes) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown list options: {', '.join(sorted(unknown))}")
        return dataclasses.replace(base, **changes) if changes else base

    def selection(self) -> ListOptions:
        """Only what selects objects (selectors), not where or how much: for a fresh (re)list."""
        return ListOptions(label_selector=self.label_selector, field_selector=self.field_selector)

    def params(self, *, watch: bool = False) -> dict[str, str]:
        """The query string; paging and resourceVersionMatch are never sent on a watch (upstream rejects them)."""
        params: dict[str, str] = {}
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        if watch:
            params["watch"] = "true"
        else:
            if self.limit:
                params["limit"] = str(int(self.limit))
            if self.continue_:
                params["continue"] = self.continue_
        if self.resource_version is not None:
            params["resourceVersion"] = str(self.resource_version)
        if self.resource_version_match and not watch:
            params["resourceVersionMatch"] = self.resource_version_match
        if watch and self.allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if self.timeout_seconds is not None:
            params["timeoutSeconds"] = str(int(self.timeout_seconds))
        return params
