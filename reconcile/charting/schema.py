"""values.schema.json checked with `jsonschema` (the seam of that library in charting).

Each error names the value's path, as Helm prints them: `replicas: -1 is less than the minimum of 0`.
"""

from __future__ import annotations

from typing import Any

import jsonschema


class SchemaError(ValueError):
    """The values break the chart's schema; `problems` lists one line per error."""

    def __init__(self, chart: str, problems: list[str]) -> None:
        super().__init__(f"values don't meet the specifications of the schema(s) in the following chart(s):\n"
                         f"{chart}:\n" + "\n".join(f"- {p}" for p in problems))
        self.problems = problems


def _path(error: Any) -> str:
    out = ""
    for step in error.absolute_path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "(root)"


def check_schema(schema: dict[str, Any], where: str) -> None:
    """The schema itself is valid (a broken schema is the chart's error, not the user's)."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise SchemaError(where, [f"values.schema.json is not a valid JSON Schema: {exc.message}"]) from None


def validate(schema: dict[str, Any], values: dict[str, Any], chart: str) -> None:
    check_schema(schema, chart)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    errors = sorted(cls(schema).iter_errors(values), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        raise SchemaError(chart, [f"{_path(e)}: {e.message}" for e in errors])
