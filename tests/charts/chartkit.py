"""Write small charts into a temp folder for tests (a chart is just files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def write_chart(root: Path, name: str = "demo", *, version: str = "0.1.0", values: dict[str, Any] | None = None,
                templates: dict[str, str] | None = None, schema: dict[str, Any] | None = None,
                files: dict[str, str] | None = None, **metadata: Any) -> Path:
    folder = root / name
    (folder / "templates").mkdir(parents=True, exist_ok=True)
    meta = {"apiVersion": "v2", "name": name, "version": version, **metadata}
    (folder / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (folder / "values.yaml").write_text(yaml.safe_dump(values or {}, sort_keys=False))
    if schema is not None:
        (folder / "values.schema.json").write_text(json.dumps(schema))
    for path, text in (templates or {}).items():
        (folder / "templates" / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / "templates" / path).write_text(text)
    for path, text in (files or {}).items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    return folder


CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ release.name }}-{{ values.suffix | default("cm") }}
data:
  value: {{ values.value | default("x") | quote }}
"""
