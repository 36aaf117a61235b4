"""The filters and functions a chart's templates get: Helm's, in jinja2 form.

`value | toyaml`, `tojson`, `fromyaml`, `indent(n)` (every line, as Helm's), `nindent(n)`, `quote`,
`squote`, `b64enc`, `b64dec`, `sha256sum`, `required("message")`, `trunc(n)`, `trimsuffix(s)`;
jinja2's own `default` stays. Functions (`lookup`, `tpl`) are bound per render in render.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from typing import Any

import yaml

from reconcile.core import templating


class RequiredValueError(templating.TemplateError):
    """`required` met a missing or empty value; the message is the chart author's."""


def _text(value: Any) -> str:
    if templating.is_undefined(value):
        str(value)  # StrictUndefined raises its own error naming what is missing
    return value if isinstance(value, str) else ("" if value is None else str(value))


_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's emitter when available
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def to_yaml(value: Any) -> str:
    return yaml.dump(value, Dumper=_Dumper, default_flow_style=False, sort_keys=False).rstrip("\n")


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=False)


def from_yaml(value: Any) -> Any:
    try:
        return yaml.load(_text(value), Loader=_Loader)
    except yaml.YAMLError as exc:
        raise templating.TemplateError(f"fromyaml: {exc}") from None


def indent(value: Any, width: int = 4) -> str:
    pad = " " * int(width)
    return "\n".join(pad + line if line else line for line in _text(value).split("\n"))


def nindent(value: Any, width: int = 4) -> str:
    return "\n" + indent(value, width)


def quote(value: Any) -> str:
    return json.dumps(_text(value))


def squote(value: Any) -> str:
    return "'" + _text(value).replace("'", "''") + "'"


def b64enc(value: Any) -> str:
    raw = value if isinstance(value, bytes) else _text(value).encode()
    return base64.b64encode(raw).decode()


def b64dec(value: Any) -> str:
    try:
        return base64.b64decode(_text(value), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise templating.TemplateError(f"b64dec: {exc}") from None


def sha256sum(value: Any) -> str:
    raw = value if isinstance(value, bytes) else _text(value).encode()
    return hashlib.sha256(raw).hexdigest()


def required(value: Any, message: str = "a required value is missing") -> Any:
    if templating.is_undefined(value) or value is None or value == "":
        raise RequiredValueError(message)
    return value


def trunc(value: Any, length: int) -> str:
    text = _text(value)
    return text[:length] if length >= 0 else text[length:]


def trimsuffix(value: Any, suffix: str) -> str:
    return _text(value).removesuffix(suffix)


def trimprefix(value: Any, prefix: str) -> str:
    return _text(value).removeprefix(prefix)


FILTERS: dict[str, Callable[..., Any]] = {
    "toyaml": to_yaml, "tojson": to_json, "fromyaml": from_yaml, "indent": indent, "nindent": nindent,
    "quote": quote, "squote": squote, "b64enc": b64enc, "b64dec": b64dec, "sha256sum": sha256sum,
    "required": required, "trunc": trunc, "trimsuffix": trimsuffix, "trimprefix": trimprefix,
}
