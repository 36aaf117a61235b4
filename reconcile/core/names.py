"""Name and label syntax checks worded like apimachinery's `util/validation`.

Each check returns a list of problems (empty when valid) instead of raising, because callers
word the surrounding error differently (selector parse errors, metadata validation causes).
The checks are memoized: every object written repeats the same few label keys, values and names.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

QUALIFIED_NAME_MAX_LENGTH = 63
LABEL_VALUE_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
DNS1123_LABEL_MAX_LENGTH = 63

_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_RE = re.compile(_QNAME_FMT)
_QNAME_ERR = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an"
    " alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation"
    f" is '{_QNAME_FMT}')"
)
_LABEL_VALUE_FMT = f"({_QNAME_FMT})?"
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)
_MEMO = 4096  # distinct values remembered per check


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def _memoized(check: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """Remember `check`'s answers (they are pure); each caller still gets a list of its own."""
    remembered = functools.lru_cache(maxsize=_MEMO)(lambda value: tuple(check(value)))

    @functools.wraps(check)
    def run(value: str) -> list[str]:
        return list(remembered(value))

    return run


def _length_and_pattern(value: str, limit: int, pattern: re.Pattern[str], message: str) -> list[str]:
    errs: list[str] = []
    if len(value) > limit:
        errs.append(max_len_error(limit))
    if not pattern.fullmatch(value):
        errs.append(message)
    return errs


@_memoized
def dns1123_subdomain_errors(value: str) -> list[str]:
    """Problems with `value` as an RFC 1123 subdomain (object names, label key prefixes)."""
    return _length_and_pattern(
        value, DNS1123_SUBDOMAIN_MAX_LENGTH, _DNS1123_SUBDOMAIN_RE,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.',"
        " and must start and end with an alphanumeric character (e.g. 'example.com', regex used for"
        f" validation is '{_DNS1123_SUBDOMAIN_FMT}')",
    )


@_memoized
def dns1123_label_errors(value: str) -> list[str]:
    """Problems with `value` as an RFC 1123 label (namespace names)."""
    return _length_and_pattern(
        value, DNS1123_LABEL_MAX_LENGTH, _DNS1123_LABEL_RE,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must"
        " start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for"
        f" validation is '{_DNS1123_LABEL_FMT}')",
    )


@_memoized
def dns1035_label_errors(value: str) -> list[str]:
    """Problems with `value` as an RFC 1035 label (service names: must start with a letter)."""
    return _length_and_pattern(
        value, DNS1123_LABEL_MAX_LENGTH, _DNS1035_LABEL_RE,
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an"
        " alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123',"
        f" regex used for validation is '{_DNS1035_LABEL_FMT}')",
    )


@_memoized
def qualified_name_errors(value: str) -> list[str]:
    """Problems with `value` as a label/annotation key: optional DNS-subdomain prefix + `/` + name."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
        errs: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        errs = []
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + e for e in dns1123_subdomain_errors(prefix))
    else:
        return [
            "a qualified name " + _QNAME_ERR + " with an optional DNS subdomain prefix and '/' (e.g."
            " 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > QUALIFIED_NAME_MAX_LENGTH:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX_LENGTH))
    if name and not _QNAME_RE.fullmatch(name):
        errs.append("name part " + _QNAME_ERR)
    return errs


@_memoized
def label_value_errors(value: str) -> list[str]:
    """Problems with `value` as a label value (may be empty)."""
    return _length_and_pattern(
        value, LABEL_VALUE_MAX_LENGTH, _LABEL_VALUE_RE,
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.',"
        " and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or"
        f" '12345', regex used for validation is '{_LABEL_VALUE_FMT}')",
    )


_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_RE = re.compile(_CONFIG_KEY_FMT)


@_memoized
def config_key_errors(value: str) -> list[str]:
    """Problems with `value` as a ConfigMap or Secret data key (it becomes a file name in a volume,
    so '.' and '..' and a '..' prefix are refused besides the character set)."""
    errs = _length_and_pattern(
        value, DNS1123_SUBDOMAIN_MAX_LENGTH, _CONFIG_KEY_RE,
        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or"
        f" 'KEY_NAME',  or 'key-name', regex used for validation is '{_CONFIG_KEY_FMT}')",
    )
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs
