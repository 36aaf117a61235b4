"""Stderr ahead of held-back stdout: the order in which an exec's output is relayed.

Why: Docker reads a command's stdout and stderr from two pipes in two goroutines, so its
multiplexed stream keeps the order within each stream but not across them. Measured with
`tar cf - /no/such/file` (tar first complains on stderr, then writes its 1024-byte end of
archive on stdout): in about a quarter of runs Docker delivered the end of archive before the
complaint. A client may act on stdout at once: `kubectl cp` stops reading (and exits) when the
archive ends, so the complaint that came after it was never printed.

So the relay holds back the latest stdout frame, sends every stderr frame at once (ahead of
the held stdout), and releases the held frame when more stdout comes, when the stream ends, or
when the command is seen still running after a short quiet spell (the caller's timing, see
`reconcile.node.server`). Order within each stream is never changed; across them Docker
promises none to reorder. Pure data, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

STDOUT = 1
STDERR = 2

Frame = tuple[int, bytes]


class StderrFirst:
    """The relay's order for (channel, payload) frames of one session's output."""

    def __init__(self) -> None:
        self._held: bytes | None = None  # the latest stdout payload, not yet sent

    @property
    def holding(self) -> bool:
        return self._held is not None

    def feed(self, frames: Iterable[Frame]) -> list[Frame]:
        """What to send now for `frames` (in the order received): their stderr, then the stdout
        held before and all but the last of their stdout; the last stdout frame is held."""
        stderr: list[Frame] = []
        stdout: list[Frame] = []
        for channel, payload in frames:
            if not payload:
                continue
            (stdout if channel == STDOUT else stderr).append((channel, payload))
        if not stdout:
            return stderr
        if self._held is not None:
            stdout.insert(0, (STDOUT, self._held))
        self._held = stdout[-1][1]
        return stderr + stdout[:-1]

    def release(self) -> list[Frame]:
        """The held stdout frame, if any (a quiet spell while the command runs, or the end)."""
        held, self._held = self._held, None
        return [] if held is None else [(STDOUT, held)]
