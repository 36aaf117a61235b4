"""The exec stream: how the output of `pods/{name}/exec` travels while the command still runs.

A response body of media type `application/vnd.reconcile.exec-stream.v1` is a sequence of
frames, each

    channel (1 byte) | payload length (4 bytes, big-endian) | payload

The channels are those of Kubernetes' channel protocols (`v4.channel.k8s.io`), so the WebSocket
protocol to come is a re-framing of the same messages rather than a new model:

- 1 stdout, 2 stderr: bytes as the command wrote them, in the order written, one frame per
  read; the output is relayed as it is produced and never gathered whole.
- 3 status: one JSON `Status`, always the last frame. `Success` for exit code 0; for another
  exit code `Failure` with reason `NonZeroExitCode` and the code in `details.causes` (reason
  `ExitCode`), as the kubelet reports it; any other `Failure` (with the reason and code of the
  error, e.g. `ServiceUnavailable`) when the command could not be followed to its end.

A stream that ends without a status frame was cut off. The frames are length-prefixed because
HTTP chunk boundaries mean nothing: a reader must accept a frame split anywhere (`Decoder`).
Pure functions and data only: the node agent writes these frames, the API server relays them,
the CLI reads them.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from reconcile.core import errors

MEDIA_TYPE = "application/vnd.reconcile.exec-stream.v1"
# What a streaming client sends as Accept: errors found before the command starts are JSON `Status`
# answers, so JSON must stay acceptable (the API server refuses requests that rule JSON out).
ACCEPT = f"{MEDIA_TYPE}, application/json"
STDOUT = 1
STDERR = 2
STATUS = 3
CHANNELS = frozenset({STDOUT, STDERR, STATUS})
MAX_PAYLOAD = 16 * 1024 * 1024  # a longer frame means the bytes are not this format

_HEADER = struct.Struct(">BI")


def frame(channel: int, payload: bytes) -> bytes:
    """One frame; empty payloads are legal but pointless, so writers skip them."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown exec stream channel {channel}")
    return _HEADER.pack(channel, len(payload)) + payload


def exit_status(code: int) -> dict[str, Any]:
    """The status frame's body for a command that ended with exit code `code`."""
    if code == 0:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: {code}", "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def status_frame(status: dict[str, Any]) -> bytes:
    return frame(STATUS, json.dumps(status, separators=(",", ":")).encode())


def error_frame(error: errors.ApiError) -> bytes:
    """The last frame when the command could not be followed to its end."""
    return status_frame(error.to_status())


def exit_code(status: dict[str, Any]) -> int:
    """The exit code a status frame reports; raises the error it reports when there is none."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message"))
                except (TypeError, ValueError):
                    break
    raise errors.from_status(status)


class Decoder:
    """Frames out of a byte stream cut at arbitrary points (HTTP chunks are not frames)."""

    def __init__(self) -> None:
        self._buffer = bytearray()  # invariant: holds less than one whole frame after each feed

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The frames completed by `data`; raises ValueError on bytes that are not this format."""
        self._buffer += data
        frames: list[tuple[int, bytes]] = []
        offset = 0
        while len(self._buffer) - offset >= _HEADER.size:
            channel, length = _HEADER.unpack_from(self._buffer, offset)
            if channel not in CHANNELS or length > MAX_PAYLOAD:
                raise ValueError(f"not an exec stream: channel {channel}, length {length}")
            end = offset + _HEADER.size + length
            if end > len(self._buffer):
                break
            frames.append((channel, bytes(self._buffer[offset + _HEADER.size:end])))
            offset = end
        del self._buffer[:offset]
        return frames

    @property
    def partial(self) -> bool:
        """Bytes of an unfinished frame are waiting (a stream ending now was cut off mid-frame)."""
        return bool(self._buffer)
