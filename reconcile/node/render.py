"""Pod containers -> Docker create arguments, through jinja2 templates an operator can read and change.

Templates render in the project's one sandboxed jinja2 environment (`reconcile.core.templating`)
with `StrictUndefined` (a typo fails loudly instead of silently dropping a setting) and must produce JSON: the keyword arguments of the docker SDK's
`containers.create`. A user's template directory (`--templates DIR`) is searched first, then the
shipped `templates/`, so overriding one template does not require copying the other.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reconcile.core import paths, quantities, templating

CONTAINER_TEMPLATE = "container.json.j2"
INFRA_TEMPLATE = "infra.json.j2"


class RenderError(Exception):
    """A template failed or produced something that is not a JSON object."""


@dataclass(frozen=True)
class NodeView:
    """What templates see of the node."""

    name: str
    address: str  # InternalIP; also the default host IP for hostPort publishing
    network: str  # the per-node bridge network pods join
    infra_image: str
    pod_cidr: str


def _cpu_nanos(value: Any) -> int:
    return quantities.parse_cpu_millis(value) * 1_000_000


def _bytes(value: Any) -> int:
    return quantities.parse_bytes(value)


class Renderer:
    """Renders the container and infra templates (compiled once, cached by jinja2)."""

    def __init__(self, template_dir: Path | None = None) -> None:
        folders: list[Path] = []
        if template_dir is not None:
            if not Path(template_dir).is_dir():
                raise RenderError(f"template directory {template_dir} does not exist")
            folders.append(Path(template_dir))
        folders.append(paths.data_dir("templates"))
        self.templates = templating.Templates(templating.directories(folders), strict=True,
                                              filters={"cpu_nanos": _cpu_nanos, "bytes": _bytes})

    def render(self, template: str, **context: Any) -> dict[str, Any]:
        try:
            text = self.templates.render(template, **context)
        except templating.TemplateError as exc:
            raise RenderError(f"template {template}: {exc}") from exc
        except (ValueError, TypeError, ArithmeticError) as exc:  # a filter given a bad quantity
            raise RenderError(f"template {template}: {exc}") from exc
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise RenderError(f"template {template} did not produce JSON ({exc}): {text[:500]}") from exc
        if not isinstance(spec, dict) or not spec.get("image"):
            raise RenderError(f"template {template} must produce a JSON object with an image")
        return spec

    def container(self, *, pod: dict, container: dict, node: NodeView, name: str, labels: dict[str, str],
                  infra_id: str, env: list[dict[str, str]], command: list[str] | None, args: list[str] | None,
                  mounts: list[str]) -> dict[str, Any]:
        return self.render(CONTAINER_TEMPLATE, pod=pod, container=container, node=asdict(node), name=name,
                           labels=labels, infra_id=infra_id, env=env, command=command, args=args, mounts=mounts)

    def infra(self, *, pod: dict, node: NodeView, name: str, labels: dict[str, str]) -> dict[str, Any]:
        return self.render(INFRA_TEMPLATE, pod=pod, node=asdict(node), name=name, labels=labels)
