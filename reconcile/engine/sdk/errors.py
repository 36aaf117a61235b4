"""Exceptions a handler raises to steer its own retries (kopf's TemporaryError / PermanentError)."""

from __future__ import annotations


class HandlerError(Exception):
    """Base of the errors that carry a retry decision."""


class TemporaryError(HandlerError):
    """Retry this handler after `delay` seconds (the default keeps kopf's 60 s)."""

    def __init__(self, message: str = "", *, delay: float = 60.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(HandlerError):
    """Give up on this handler: it is recorded as failed and never retried for this change."""

