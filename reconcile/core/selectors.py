"""Label and field selectors with apimachinery's grammar, normal form and error wording.

kubectl, kopf and client-go send selectors as strings and print the server's parse errors
verbatim, so the parser mirrors `k8s.io/apimachinery/pkg/labels` and `.../fields` closely:
same tokens, same sorting of requirements by key, same messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from reconcile.core import errors, names

# --- operators (apimachinery's selection.Operator strings) ---

IN = "in"
NOT_IN = "notin"
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)


# --- field.Error-style formatting ---


def _go_value(value: Any) -> str:
    """Format a bad value the way field.Error does (`%q` for strings, `[]string{...}` for lists)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[]string{" + ", ".join(json.dumps(v, ensure_ascii=False) for v in value) + "}"
    return str(value)


def _invalid(path: str, value: Any, detail: str) -> str:
    return f"{path}: Invalid value: {_go_value(value)}: {detail}"


def _aggregate(messages: list[str]) -> str:
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


def _parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64): optional sign, decimal digits only."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


# --- label selectors ---


@dataclass(frozen=True, slots=True)
class Requirement:
    """One term of a label selector: `key op values`."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def create(
        cls, key: str, operator: str, values: Iterable[str] = (), *, key_path: str = "key"
    ) -> Requirement:
        """Validate like labels.NewRequirement; raise BadRequest with its wording."""
        vals = list(values)
        problems: list[str] = []
        key_errs = names.qualified_name_errors(key)
        if key_errs:
            problems.append(_invalid(key_path, key, "; ".join(key_errs)))
        if operator in (IN, NOT_IN):
            if not vals:
                problems.append(
                    _invalid("values", vals, "for 'in', 'notin' operators, values set can't be empty")
                )
        elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
            if len(vals) != 1:
                problems.append(
                    _invalid("values", vals, "exact-match compatibility requires one single value")
                )
        elif operator in (EXISTS, DOES_NOT_EXIST):
            if vals:
                problems.append(
                    _invalid("values", vals, "values set must be empty for exists and does not exist")
                )
        elif operator in (GREATER_THAN, LESS_THAN):
            if len(vals) != 1:
                problems.append(
                    _invalid("values", vals, "for 'Gt', 'Lt' operators, exactly one value is required")
                )
            for i, v in enumerate(vals):
                if _parse_int(v) is None:
                    problems.append(
                        _invalid(f"values[{i}]", v, "for 'Gt', 'Lt' operators, the value must be an integer")
                    )
        else:
            supported = ", ".join(json.dumps(o) for o in (*_BINARY_OPERATORS, EXISTS, DOES_NOT_EXIST))
            problems.append(
                f"operator: Unsupported value: {json.dumps(operator)}: supported values: {supported}"
            )
        for i, v in enumerate(vals):
            value_errs = names.label_value_errors(v)
            if value_errs:
                problems.append(_invalid(f"values[{i}]", v, "; ".join(value_errs)))
        if problems:
            raise errors.BadRequest(_aggregate(problems))
        return cls(key, operator, tuple(sorted(set(vals))))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Requirement.Matches: `!=`/`notin` also match objects that lack the key."""
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have = _parse_int(str(labels[self.key]))
            want = _parse_int(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        if self.operator == EXISTS:
            return self.key
        joined = ",".join(sorted(self.values))
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({joined})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{joined}"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """AND of requirements; `nothing` is the selector that matches no object (a nil LabelSelector)."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def match_nothing(cls) -> LabelSelector:
        return cls(nothing=True)

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> LabelSelector:
        """`k1=v1,k2=v2` for a plain label map (e.g. a Service's `spec.selector`)."""
        return cls(_sorted(Requirement.create(k, EQUALS, [v]) for k, v in labels.items()))

    @classmethod
    def from_match(cls, spec: Mapping[str, Any] | None) -> LabelSelector:
        """metav1.LabelSelectorAsSelector: None matches nothing, `{}` matches everything."""
        if spec is None:
            return cls.match_nothing()
        match_labels = spec.get("matchLabels") or {}
        expressions = spec.get("matchExpressions") or []
        reqs = [Requirement.create(str(k), EQUALS, [str(v)]) for k, v in match_labels.items()]
        ops = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
        for expr in expressions:
            operator = expr.get("operator")
            if operator not in ops:
                raise errors.BadRequest(f"{json.dumps(operator)} is not a valid label selector operator")
            reqs.append(Requirement.create(str(expr.get("key", "")), ops[operator], expr.get("values") or []))
        return cls(_sorted(reqs))

    @property
    def empty(self) -> bool:
        """True when the selector selects every object."""
        return not self.requirements and not self.nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _sorted(reqs: Iterable[Requirement]) -> tuple[Requirement, ...]:
    return tuple(sorted(reqs, key=lambda r: r.key))


# lexer tokens
_ERROR, _EOS, _CLOSE, _COMMA, _NOT, _DEQ, _EQ, _GT, _ID, _IN, _LT, _NEQ, _NOTIN, _OPEN = range(14)
_SYMBOLS = {
    ")": _CLOSE,
    ",": _COMMA,
    "!": _NOT,
    "==": _DEQ,
    "=": _EQ,
    ">": _GT,
    "<": _LT,
    "!=": _NEQ,
    "(": _OPEN,
}
_KEYWORDS = {"in": _IN, "notin": _NOTIN}
_SPECIAL = set("=!(),><")
_WHITESPACE = set(" \t\r\n")


def _lex(text: str) -> list[tuple[int, str]]:
    """labels.Lexer: identifiers run until whitespace or a special symbol; symbols match longest."""
    tokens: list[tuple[int, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            tokens.append((_EOS, ""))
            return tokens
        if text[i] in _SPECIAL:
            buffer = ""
            last: tuple[int, str] | None = None
            while i < n and text[i] in _SPECIAL:
                buffer += text[i]
                if buffer in _SYMBOLS:
                    last = (_SYMBOLS[buffer], buffer)
                    i += 1
                elif last is not None:
                    break
                else:
                    i += 1
            if last is None:
                tokens.append((_ERROR, f"error expected: keyword found '{buffer}'"))
                tokens.append((_EOS, ""))
                return tokens
            tokens.append(last)
        else:
            start = i
            while i < n and text[i] not in _WHITESPACE and text[i] not in _SPECIAL:
                i += 1
            word = text[start:i]
            tokens.append((_KEYWORDS.get(word, _ID), word))


class _Parser:
    """labels.Parser: recursive descent over the token list, with `in`/`notin` as identifiers in values."""

    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def _peek(self, values: bool) -> tuple[int, str]:
        tok, lit = self.tokens[min(self.pos, len(self.tokens) - 1)]
        if values and tok in (_IN, _NOTIN):
            tok = _ID
        return tok, lit

    def _next(self, values: bool) -> tuple[int, str]:
        item = self._peek(values)
        self.pos += 1
        return item

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self._peek(True)
            if tok in (_ID, _NOT):
                try:
                    reqs.append(self._requirement())
                except errors.BadRequest as exc:
                    raise errors.BadRequest(f"unable to parse requirement: {exc.message}") from None
                tok, lit = self._next(True)
                if tok == _EOS:
                    return reqs
                if tok == _COMMA:
                    tok2, lit2 = self._peek(True)
                    if tok2 not in (_ID, _NOT):
                        raise errors.BadRequest(f"found '{lit2}', expected: identifier after ','")
                    continue
                raise errors.BadRequest(f"found '{lit}', expected: ',' or 'end of string'")
            if tok == _EOS:
                return reqs
            raise errors.BadRequest(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> Requirement:
        operator = ""
        tok, lit = self._next(True)
        if tok == _NOT:
            operator = DOES_NOT_EXIST
            tok, lit = self._next(True)
        if tok != _ID:
            raise errors.BadRequest(f"found '{lit}', expected: identifier")
        key_errs = names.qualified_name_errors(lit)
        if key_errs:
            raise errors.BadRequest(_invalid("<nil>", lit, "; ".join(key_errs)))
        key = lit
        if self._peek(True)[0] in (_EOS, _COMMA):
            return Requirement.create(key, operator or EXISTS)
        if operator == DOES_NOT_EXIST:
            # `!key` must be followed by ',' or the end; anything else is reported by the caller
            return Requirement.create(key, DOES_NOT_EXIST)
        op = self._operator()
        values = self._set_values() if op in (IN, NOT_IN) else self._exact_value()
        return Requirement.create(key, op, values)

    def _operator(self) -> str:
        tok, lit = self._next(False)
        ops = {
            _IN: IN,
            _EQ: EQUALS,
            _DEQ: DOUBLE_EQUALS,
            _GT: GREATER_THAN,
            _LT: LESS_THAN,
            _NOTIN: NOT_IN,
            _NEQ: NOT_EQUALS,
        }
        if tok not in ops:
            raise errors.BadRequest(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return ops[tok]

    def _set_values(self) -> list[str]:
        tok, lit = self._next(True)
        if tok != _OPEN:
            raise errors.BadRequest(f"found '{lit}' expected: '('")
        tok, lit = self._peek(True)
        if tok in (_ID, _COMMA):
            values = self._identifiers()
            tok, _ = self._next(True)
            if tok != _CLOSE:
                raise errors.BadRequest(f"found '{lit}', expected: ')'")
            return values
        if tok == _CLOSE:
            self._next(True)
            return [""]
        raise errors.BadRequest(f"found '{lit}', expected: ',', ')' or identifier")

    def _identifiers(self) -> list[str]:
        values: set[str] = set()
        while True:
            tok, lit = self._next(True)
            if tok == _ID:
                values.add(lit)
                tok2, lit2 = self._peek(True)
                if tok2 == _COMMA:
                    continue
                if tok2 == _CLOSE:
                    return sorted(values)
                raise errors.BadRequest(f"found '{lit2}', expected: ',' or ')'")
            if tok == _COMMA:
                if not values:
                    values.add("")
                tok2, _ = self._peek(True)
                if tok2 == _CLOSE:
                    values.add("")
                    return sorted(values)
                if tok2 == _COMMA:
                    self._next(True)
                    values.add("")
                continue
            raise errors.BadRequest(f"found '{lit}', expected: ',', or identifier")

    def _exact_value(self) -> list[str]:
        tok, _ = self._peek(True)
        if tok in (_EOS, _COMMA):
            return [""]
        tok, lit = self._next(True)
        if tok == _ID:
            return [lit]
        raise errors.BadRequest(f"found '{lit}', expected: identifier")


def parse_labels(text: str | None) -> LabelSelector:
    """labels.Parse: `""` (or None) selects everything; requirements come out sorted by key."""
    if not text:
        return LabelSelector.everything()
    return LabelSelector(_sorted(_Parser(text).parse()))


# --- field selectors ---


class FieldRequirement(NamedTuple):
    field: str
    op: str  # "=" or "!="
    value: str


_FIELD_OPERATORS = ("!=", "==", "=")

# Field labels whose value is not simply the JSON at the dotted path of the same name.
_FIELD_PATHS: dict[str, dict[str, str]] = {"Event": {"source": "source.component"}}
# Defaults that Go's typed objects report for absent fields (e.g. `spec.unschedulable=false`).
_FIELD_DEFAULTS: dict[str, str] = {
    "spec.unschedulable": "false",
    "spec.hostNetwork": "false",
    "status.replicas": "0",
    "status.successful": "0",
}


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """AND of `field=value` / `field!=value` terms."""

    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def value_for(self, field: str) -> str | None:
        """The value an `=` term pins `field` to (lets the API narrow `metadata.name=x` to one key)."""
        for req in self.requirements:
            if req.field == field and req.op == "=":
                return req.value
        return None

    def matches(self, obj: Mapping[str, Any]) -> bool:
        paths = _FIELD_PATHS.get(str(obj.get("kind") or ""), {})
        for field, op, value in self.requirements:
            have = field_value(obj, paths.get(field, field), default=_FIELD_DEFAULTS.get(field, ""))
            if (have == value) != (op == "="):
                return False
        return True

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{escape_field_value(v)}" for f, op, v in self.requirements)


def field_value(obj: Mapping[str, Any], path: str, *, default: str = "") -> str:
    """The string form of the value at a dotted path, as the Go field-set conversion would print it."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return default
        current = current[part]
    if current is None:
        return default
    if isinstance(current, bool):
        return "true" if current else "false"
    if isinstance(current, list):
        return ",".join(str(v.get("ip", "")) if isinstance(v, Mapping) else str(v) for v in current)
    return str(current)


def escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(value: str) -> str:
    out: list[str] = []
    escaping = False
    for ch in value:
        if escaping:
            if ch not in "\\,=":
                raise errors.BadRequest(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaping = False
        elif ch == "\\":
            escaping = True
        elif ch in ",=":
            raise errors.BadRequest(f"invalid field selector: unescaped character in value: {ch}")
        else:
            out.append(ch)
    if escaping:
        raise errors.BadRequest("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not escaped with a backslash."""
    terms: list[str] = []
    start = 0
    escaping = False
    for i, ch in enumerate(text):
        if escaping:
            escaping = False
        elif ch == "\\":
            escaping = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def parse_fields(text: str | None, *, supported: frozenset[str]) -> FieldSelector:
    """fields.ParseSelector plus the per-kind label check the API server does afterwards."""
    selector = parse_field_terms(text)
    for req in selector.requirements:
        if req.field not in supported:
            raise errors.BadRequest(f"field label not supported: {req.field}")
    return selector


def parse_field_terms(text: str | None) -> FieldSelector:
    """fields.ParseSelector alone: the terms, whatever fields they name (authorization reads a
    request's selector this way, before the handler checks the labels the kind supports)."""
    if not text:
        return FieldSelector()
    reqs: list[FieldRequirement] = []
    for term in sorted(_split_terms(text)):
        if term == "":
            continue
        for i in range(len(term)):
            op = next((o for o in _FIELD_OPERATORS if term.startswith(o, i)), None)
            if op is not None:
                field, raw = term[:i], term[i + len(op) :]
                break
        else:
            raise errors.BadRequest(f"invalid selector: '{text}'; can't understand '{term}'")
        value = _unescape_field_value(raw)
        reqs.append(FieldRequirement(field, "!=" if op == "!=" else "=", value))
    return FieldSelector(tuple(reqs))


_COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
_KIND_FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("", "Pod"): frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        }
    ),
    ("", "Event"): frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
    ("", "Namespace"): frozenset({"status.phase"}),
    ("", "Secret"): frozenset({"type"}),
    ("", "Node"): frozenset({"spec.unschedulable"}),
    ("", "ReplicationController"): frozenset({"status.replicas"}),
    ("apps", "ReplicaSet"): frozenset({"status.replicas"}),
    ("batch", "Job"): frozenset({"status.successful"}),
}


def field_labels(group: str, kind: str) -> frozenset[str]:
    """The field selector labels the API accepts for a kind (upstream's per-kind conversion funcs)."""
    return _COMMON_FIELDS | _KIND_FIELDS.get((group, kind), frozenset())
