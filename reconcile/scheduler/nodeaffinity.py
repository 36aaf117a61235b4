"""Node selector terms (required and preferred node affinity) over a node's labels and name.

Semantics of upstream's nodeaffinity helpers: terms are ORed, the expressions (and fields)
of one term are ANDed, and a term with no expressions and no fields matches nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _int(text: Any) -> int | None:
    try:
        return int(str(text))
    except ValueError:
        return None


def match_expression(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """One NodeSelectorRequirement: In, NotIn, Exists, DoesNotExist, Gt, Lt (labels semantics)."""
    key = expression.get("key") or ""
    operator = expression.get("operator")
    values = expression.get("values") or []
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        have, want = _int(labels[key]), _int(values[0])
        if have is None or want is None:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def _match_field(expression: Mapping[str, Any], node_name: str) -> bool:
    """matchFields supports only metadata.name with In / NotIn, as upstream."""
    if expression.get("key") != "metadata.name":
        return False
    values = expression.get("values") or []
    if expression.get("operator") == "In":
        return node_name in values
    if expression.get("operator") == "NotIn":
        return node_name not in values
    return False


def match_term(term: Mapping[str, Any], labels: Mapping[str, str], node_name: str) -> bool:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    return all(match_expression(e, labels) for e in expressions) and all(
        _match_field(f, node_name) for f in fields
    )


def match_terms(terms: list[Mapping[str, Any]], labels: Mapping[str, str], node_name: str) -> bool:
    """nodeSelectorTerms: any term matching is enough; no terms match nothing."""
    return any(match_term(t, labels, node_name) for t in terms)


def match_node_selector(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """spec.nodeSelector: every key=value must be a label of the node."""
    return all(labels.get(k) == v for k, v in selector.items())
