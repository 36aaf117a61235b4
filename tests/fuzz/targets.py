"""The four fuzzed resources: ConfigMaps, Deployments, Pods (schemas from their CRD documents in
`crds/`, the same files the server loads) and Gadgets, a custom resource defined here.

The Gadget CRD is richer than the tests' Widget on purpose: it has every structural-schema feature a
CRD author reaches for (int32 with bounds, enum, number, nullable, date-time, a list-map, a set, an
int-or-string map, preserved unknown fields, an embedded resource, defaults, printer columns of each
type, status and scale subresources), so the generic CRD path is fuzzed as widely as the built-ins.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CRDS = Path(__file__).resolve().parents[2] / "crds"
GADGET_GROUP = "fuzz.reconcile.dev"

GADGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["color"],
            "properties": {
                "size": {"type": "integer", "format": "int32", "minimum": 1, "default": 1},
                "color": {"type": "string", "enum": ["red", "blue", "green"]},
                "weight": {"type": "number", "minimum": 0},
                "enabled": {"type": "boolean"},
                "note": {"type": "string", "nullable": True, "maxLength": 64},
                "when": {"type": "string", "format": "date-time"},
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "maxLength": 15},
                            "port": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535},
                            "protocol": {"type": "string", "enum": ["TCP", "UDP"], "default": "TCP"},
                        },
                    },
                },
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "maxItems": 8, "items": {"type": "string"}},
                "limits": {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True}},
                "blob": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                             "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "size": {"type": "integer", "format": "int32"},
                "selector": {"type": "string"},
                "phase": {"type": "string"},
                "observedGeneration": {"type": "integer", "format": "int64"},
                "conditions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "status"],
                        "properties": {
                            "type": {"type": "string"},
                            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                            "lastTransitionTime": {"type": "string", "format": "date-time"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}


def gadget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{GADGET_GROUP}"},
        "spec": {
            "group": GADGET_GROUP,
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size",
                                                         "statusReplicasPath": ".status.size",
                                                         "labelSelectorPath": ".status.selector"}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
                    {"name": "Weight", "type": "number", "jsonPath": ".spec.weight"},
                    {"name": "Enabled", "type": "boolean", "jsonPath": ".spec.enabled"},
                    {"name": "When", "type": "date", "jsonPath": ".spec.when"},
                    {"name": "CPU", "type": "string", "jsonPath": ".spec.limits.cpu", "priority": 1},
                    {"name": "Port", "type": "integer", "jsonPath": ".spec.ports[0].port", "priority": 1},
                ],
                "schema": {"openAPIV3Schema": copy.deepcopy(GADGET_SCHEMA)},
            }],
        },
    }


def _crd_schema(file_name: str) -> dict[str, Any]:
    document = yaml.load((CRDS / file_name).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@dataclass(frozen=True)
class Target:
    """One fuzzed resource: where it lives, its schema, and a known-good object to start from."""

    plural: str
    kind: str
    group: str
    schema: dict[str, Any]
    builtin: bool
    scale: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/v1" if self.group else "v1"

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def collection(self, namespace: str) -> str:
        root = f"/apis/{self.group}/v1" if self.group else "/api/v1"
        return f"{root}/namespaces/{namespace}/{self.plural}"

    def item(self, namespace: str, name: str) -> str:
        return f"{self.collection(namespace)}/{name}"

    def base(self, name: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """A small object the server accepts as it is."""
        metadata: dict[str, Any] = {"name": name, "labels": dict(labels or {"fuzz": "yes"})}
        obj: dict[str, Any] = {"apiVersion": self.api_version, "kind": self.kind, "metadata": metadata}
        if self.kind == "ConfigMap":
            obj["data"] = {"a": "1", "b.txt": "hello"}
        elif self.kind == "Deployment":
            app = {"app": name}
            obj["spec"] = {"replicas": 1, "selector": {"matchLabels": app},
                           "template": {"metadata": {"labels": app},
                                        "spec": {"containers": [{"name": "main", "image": "nginx:1.25",
                                                                 "env": [{"name": "A", "value": "1"}]}]}}}
        elif self.kind == "Pod":
            obj["spec"] = {"containers": [{"name": "c", "image": "busybox:1.36", "ports": [{"containerPort": 80}]}]}
        else:
            obj["spec"] = {"color": "red", "size": 1, "ports": [{"name": "http", "port": 80}], "tags": ["a"]}
        return obj


CONFIGMAPS = Target("configmaps", "ConfigMap", "", _crd_schema("core-configmaps.yaml"), builtin=True)
DEPLOYMENTS = Target("deployments", "Deployment", "apps", _crd_schema("apps-deployments.yaml"), builtin=True, scale=True)
PODS = Target("pods", "Pod", "", _crd_schema("core-pods.yaml"), builtin=True)
GADGETS = Target("gadgets", "Gadget", GADGET_GROUP, GADGET_SCHEMA, builtin=False, scale=True)
ALL = (CONFIGMAPS, DEPLOYMENTS, PODS, GADGETS)
SCALED = tuple(t for t in ALL if t.scale)
WITH_STATUS = (DEPLOYMENTS, PODS, GADGETS)
