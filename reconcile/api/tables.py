"""Server-side printing: objects to a meta.k8s.io/v1 `Table`, the way kubectl asks for `get` output.

Built-in kinds use per-kind printers that follow kubernetes' `pkg/printers/internalversion/printers.go`
(computed cells such as a pod's status cannot be written as a jsonPath); every other resource uses its
CRD `additionalPrinterColumns`, as apiextensions' table convertor does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from reconcile.api import registry
from reconcile.core import meta

Row = list[Any]
Printer = Callable[[dict, datetime], Row]
_DESCRIPTIONS = {"Name": "Name must be unique within a namespace. Is required when creating resources, although "
                 "some resources may allow a client to request the generation of an appropriate name "
                 "automatically. Name is primarily intended for creation idempotence and configuration "
                 "definition. Cannot be updated.",
                 "Age": "CreationTimestamp is a timestamp representing the server time when this object was "
                 "created."}


# --- small helpers ------------------------------------------------------------------------------------------------

human_duration = meta.human_duration


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return meta.parse_time(value)
    except ValueError:
        return None


def _since(value: Any, now: datetime) -> str:
    when = _parse_time(value)
    return "<unknown>" if when is None else human_duration((now - when).total_seconds())


def _age(obj: dict, now: datetime) -> str:
    return _since(_meta(obj).get("creationTimestamp"), now)


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _get(obj: Any, *keys: str | int, default: Any = None) -> Any:
    for key in keys:
        if isinstance(key, int):
            if not isinstance(obj, list) or len(obj) <= key:
                return default
        elif not isinstance(obj, dict) or key not in obj:
            return default
        obj = obj[key]
    return default if obj is None else obj


def _selector_string(selector: Any) -> str:
    """metav1.FormatLabelSelector: matchLabels then expressions; "<none>" when empty."""
    if not isinstance(selector, dict):
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), ",".join(sorted(expr.get("values") or []))
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": f"{key}",
                      "DoesNotExist": f"!{key}"}.get(op, f"{key} {op} ({values})"))
    return ",".join(parts) or "<none>"


def _containers(obj: dict, *path: str) -> tuple[str, str]:
    containers = _get(obj, *path, "containers", default=[])
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _col(name: str, kind: str = "string", *, priority: int = 0, fmt: str = "", description: str = "") -> dict:
    return {"name": name, "type": kind, "format": fmt, "description": description or _DESCRIPTIONS.get(name, name),
            "priority": priority}


NAME = _col("Name", fmt="name")
AGE = _col("Age")

# --- per-kind printers ----------------------------------------------------------------------------------------------


def _pod_status(pod: dict) -> str:
    """printPod's STATUS cell: init progress, the last container's waiting/terminated reason, Terminating."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or ""
    init_specs = _get(pod, "spec", "initContainers", default=[])
    initializing = False
    for index, cs in enumerate(status.get("initContainerStatuses") or []):
        term, wait = _get(cs, "state", "terminated"), _get(cs, "state", "waiting")
        if term and term.get("exitCode") == 0:
            continue
        if _get(init_specs, index, "restartPolicy") == "Always" and cs.get("started"):
            continue  # sidecar
        if term:
            reason = "Init:" + (term.get("reason") or (f"Signal:{term['signal']}" if term.get("signal")
                                                     else f"ExitCode:{term.get('exitCode')}"))
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break
    if not initializing:
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            term, wait = _get(cs, "state", "terminated"), _get(cs, "state", "waiting")
            if wait and wait.get("reason"):
                reason = wait["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                reason = f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode')}"
            elif _get(cs, "state", "running") and cs.get("ready"):
                has_running = True
        if reason == "Completed" and has_running:
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            reason = "Running" if ready else "NotReady"
    if _meta(pod).get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return reason


def _pod_row(pod: dict, now: datetime) -> Row:
    statuses = _get(pod, "status", "containerStatuses", default=[])
    total = len(_get(pod, "spec", "containers", default=[]))
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restarts = sum(int(cs.get("restartCount") or 0) for cs in statuses)
    last = max((t for cs in statuses if (t := _parse_time(_get(cs, "lastState", "terminated", "finishedAt")))),
               default=None)
    restart_cell = f"{restarts} ({human_duration((now - last).total_seconds())} ago)" if restarts and last else str(restarts)
    return [_meta(pod).get("name", ""), f"{ready}/{total}", _pod_status(pod), restart_cell, _age(pod, now),
            _get(pod, "status", "podIP", default="<none>"), _get(pod, "spec", "nodeName", default="<none>"),
            _get(pod, "status", "nominatedNodeName", default="<none>"), "<none>"]


def _deployment_row(obj: dict, now: datetime) -> Row:
    status = obj.get("status") or {}
    names, images = _containers(obj, "spec", "template", "spec")
    return [_meta(obj).get("name", ""), f"{status.get('readyReplicas', 0)}/{_get(obj, 'spec', 'replicas', default=0)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0), _age(obj, now), names, images,
            _selector_string(_get(obj, "spec", "selector"))]


def _replicaset_row(obj: dict, now: datetime) -> Row:
    status = obj.get("status") or {}
    names, images = _containers(obj, "spec", "template", "spec")
    return [_meta(obj).get("name", ""), _get(obj, "spec", "replicas", default=0), status.get("replicas", 0),
            status.get("readyReplicas", 0), _age(obj, now), names, images, _selector_string(_get(obj, "spec", "selector"))]


def _statefulset_row(obj: dict, now: datetime) -> Row:
    names, images = _containers(obj, "spec", "template", "spec")
    ready = f"{_get(obj, 'status', 'readyReplicas', default=0)}/{_get(obj, 'spec', 'replicas', default=0)}"
    return [_meta(obj).get("name", ""), ready, _age(obj, now), names, images]


def _true_condition(obj: dict, kind: str) -> bool:
    return any(isinstance(c, dict) and c.get("type") == kind and c.get("status") == "True"
               for c in _get(obj, "status", "conditions", default=[]) or [])


def _job_status(obj: dict) -> str:
    """Upstream printJob's STATUS: the first of these that holds."""
    for kind in ("Complete", "Failed"):
        if _true_condition(obj, kind):
            return kind
    if _meta(obj).get("deletionTimestamp"):
        return "Terminating"
    for kind in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _true_condition(obj, kind):
            return kind
    return "Running"


def _job_row(obj: dict, now: datetime) -> Row:
    """Upstream printJob: COMPLETIONS `succeeded/completions` (`/1 of N` when completions is unset
    and parallelism > 1), DURATION from startTime to completionTime (or now)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    succeeded = status.get("succeeded") or 0
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif int(spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start, end = _parse_time(status.get("startTime")), _parse_time(status.get("completionTime"))
    duration = "" if start is None else human_duration(((end or now) - start).total_seconds())
    names, images = _containers(obj, "spec", "template", "spec")
    return [_meta(obj).get("name", ""), _job_status(obj), completions, duration, _age(obj, now), names, images,
            _selector_string(spec.get("selector"))]


def _cronjob_row(obj: dict, now: datetime) -> Row:
    """Upstream printCronJob: TIMEZONE and LAST SCHEDULE `<none>` when unset, SUSPEND `<unset>`."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    suspend = spec.get("suspend")
    last = status.get("lastScheduleTime")
    names, images = _containers(obj, "spec", "jobTemplate", "spec", "template", "spec")
    return [_meta(obj).get("name", ""), spec.get("schedule", ""), spec.get("timeZone") or "<none>",
            "<unset>" if suspend is None else str(bool(suspend)), len(status.get("active") or []),
            _since(last, now) if last else "<none>", _age(obj, now), names, images,
            _selector_string(_get(spec, "jobTemplate", "spec", "selector"))]


def _controller_revision_row(obj: dict, now: datetime) -> Row:
    """Upstream printControllerRevision: the controller as `<kind>.<group>/<name>` in lower case."""
    controller = "<none>"
    ref = meta.controller_owner(obj)
    if ref is not None:
        group = str(ref.get("apiVersion") or "").rpartition("/")[0]
        kind = f"{ref.get('kind', '')}.{group}" if group else str(ref.get("kind", ""))
        controller = f"{kind.lower()}/{ref.get('name', '')}"
    return [_meta(obj).get("name", ""), controller, obj.get("revision", 0), _age(obj, now)]


def _service_row(obj: dict, now: datetime) -> Row:
    spec = obj.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    external = list(spec.get("externalIPs") or [])
    if kind == "LoadBalancer":
        ingress = [i.get("ip") or i.get("hostname") for i in _get(obj, "status", "loadBalancer", "ingress", default=[])]
        external = [*ingress, *external] or ["<pending>"]
    elif kind == "ExternalName":
        external = [spec.get("externalName", "")]
    ports = []
    for port in spec.get("ports") or []:
        text = f"{port.get('port')}:{port['nodePort']}" if port.get("nodePort") else f"{port.get('port')}"
        ports.append(f"{text}/{port.get('protocol') or 'TCP'}")
    selector = spec.get("selector") or {}
    return [_meta(obj).get("name", ""), kind, spec.get("clusterIP") or "<none>", ",".join(external) or "<none>",
            ",".join(ports) or "<none>", _age(obj, now),
            ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"]


def _node_row(obj: dict, now: datetime) -> Row:
    conditions = {c.get("type"): c.get("status") for c in _get(obj, "status", "conditions", default=[])}
    ready = conditions.get("Ready")
    state = "Ready" if ready == "True" else "NotReady" if ready == "False" else "Unknown"
    if _get(obj, "spec", "unschedulable"):
        state += ",SchedulingDisabled"
    labels = _meta(obj).get("labels") or {}
    roles = sorted({k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k}
                   | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()))
    addresses = {a.get("type"): a.get("address") for a in _get(obj, "status", "addresses", default=[])}
    info = _get(obj, "status", "nodeInfo", default={})
    return [_meta(obj).get("name", ""), state, ",".join(r for r in roles if r) or "<none>", _age(obj, now),
            info.get("kubeletVersion", ""), addresses.get("InternalIP", "<none>"), addresses.get("ExternalIP", "<none>"),
            info.get("osImage", "<unknown>"), info.get("kernelVersion", "<unknown>"),
            info.get("containerRuntimeVersion", "<unknown>")]


def _access_modes(modes: list) -> str:
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
    return ",".join(short.get(m, m) for m in modes or [])


def _pv_row(obj: dict, now: datetime) -> Row:
    spec = obj.get("spec") or {}
    claim = spec.get("claimRef") or {}
    return [_meta(obj).get("name", ""), str(_get(spec, "capacity", "storage", default="")),
            _access_modes(spec.get("accessModes")), spec.get("persistentVolumeReclaimPolicy", ""),
            _get(obj, "status", "phase", default=""),
            f"{claim.get('namespace')}/{claim.get('name')}" if claim.get("name") else "",
            spec.get("storageClassName", ""), _get(obj, "status", "reason", default=""), _age(obj, now),
            spec.get("volumeMode", "")]


def _pvc_row(obj: dict, now: datetime) -> Row:
    phase = _get(obj, "status", "phase", default="")
    if _meta(obj).get("deletionTimestamp"):
        phase = "Terminating"
    return [_meta(obj).get("name", ""), phase, _get(obj, "spec", "volumeName", default=""),
            str(_get(obj, "status", "capacity", "storage", default="")),
            _access_modes(_get(obj, "status", "accessModes", default=[])),
            _get(obj, "spec", "storageClassName", default=""), _age(obj, now),
            _get(obj, "spec", "volumeMode", default="")]


def _storage_class_row(obj: dict, now: datetime) -> Row:
    """Upstream's printer: the default class's name carries ` (default)`."""
    annotations = _meta(obj).get("annotations") or {}
    default = "true" in (annotations.get("storageclass.kubernetes.io/is-default-class"),
                         annotations.get("storageclass.beta.kubernetes.io/is-default-class"))
    name = _meta(obj).get("name", "") + (" (default)" if default else "")
    return [name, obj.get("provisioner", ""), obj.get("reclaimPolicy") or "Delete",
            obj.get("volumeBindingMode") or "Immediate", bool(obj.get("allowVolumeExpansion")), _age(obj, now)]


def _endpoints_row(obj: dict, now: datetime) -> Row:
    pairs = []
    for subset in obj.get("subsets") or []:
        for address in subset.get("addresses") or []:
            ports = subset.get("ports") or [{}]
            pairs += [f"{address.get('ip')}:{p['port']}" if p.get("port") else f"{address.get('ip')}" for p in ports]
    text = ",".join(pairs[:3]) + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")
    return [_meta(obj).get("name", ""), text or "<none>", _age(obj, now)]


def _more(items: list[str], count: int, limit: int = 3) -> str:
    """printers.go listWithMoreString: the first three, "+ N more...", "<unset>" when empty."""
    if count > limit:
        return f"{','.join(items[:limit])} + {count - limit} more..."
    return ",".join(items) or "<unset>"


def _endpointslice_row(obj: dict, now: datetime) -> Row:
    """printEndpointSlice: formatDiscoveryPorts (number, else name, else "*") and formatDiscoveryEndpoints."""
    ports = [str(p.get("port") or p.get("name") or "*") for p in obj.get("ports") or [] if isinstance(p, dict)]
    addresses = [str(a) for e in obj.get("endpoints") or [] if isinstance(e, dict) for a in e.get("addresses") or []]
    return [_meta(obj).get("name", ""), obj.get("addressType", ""), _more(ports, len(ports)),
            _more(addresses, len(addresses)), _age(obj, now)]


def _int_or_percent(value: Any) -> str:
    """intstr.String(): an int as its digits, a percent as written; "N/A" when unset (printers.go)."""
    if value is None:
        return "N/A"
    return str(value)


def _pdb_row(obj: dict, now: datetime) -> Row:
    """printPodDisruptionBudget: min available, max unavailable, allowed disruptions."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    allowed = _get(obj, "status", "disruptionsAllowed", default=0)
    return [_meta(obj).get("name", ""), _int_or_percent(spec.get("minAvailable")),
            _int_or_percent(spec.get("maxUnavailable")), allowed if isinstance(allowed, int) else 0, _age(obj, now)]


def _priority_class_row(obj: dict, now: datetime) -> Row:
    """printPriorityClass: value, global default, age, then the preemption policy ("" when unset)."""
    return [_meta(obj).get("name", ""), obj.get("value", 0), bool(obj.get("globalDefault")), _age(obj, now),
            obj.get("preemptionPolicy") or ""]


def _ingress_hosts(rules: list) -> str:
    """formatHosts: the first three hosts named; once three are taken, any further rule makes it
    "+ N more..." (N counts rules beyond three, as upstream); "*" when no rule names a host."""
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 3:
            more = True
        if not more and isinstance(rule, dict) and rule.get("host"):
            hosts.append(str(rule["host"]))
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - 3} more..." if more else text


def _ingress_row(obj: dict, now: datetime) -> Row:
    """printIngress: class ("<none>" when unset), hosts, addresses (sorted, unique; the server prints
    wide, so never cut), and ports: 80, and 443 beside it when TLS is configured."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    points = _get(obj, "status", "loadBalancer", "ingress", default=[])
    addresses = sorted({p.get("ip") or p.get("hostname") for p in points
                        if isinstance(p, dict) and (p.get("ip") or p.get("hostname"))})
    class_name = spec.get("ingressClassName")
    return [_meta(obj).get("name", ""), "<none>" if class_name is None else class_name,
            _ingress_hosts(spec.get("rules") or []), ",".join(addresses), "80, 443" if spec.get("tls") else "80",
            _age(obj, now)]


def _ingress_class_row(obj: dict, now: datetime) -> Row:
    """printIngressClass: parameters as Kind[.group]/name, "<none>" when unset."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    params = spec.get("parameters")
    shown = "<none>"
    if isinstance(params, dict):
        group = params.get("apiGroup")
        shown = f"{params.get('kind', '')}{'.' + group if group is not None else ''}/{params.get('name', '')}"
    return [_meta(obj).get("name", ""), spec.get("controller", ""), shown, _age(obj, now)]


def _hpa_metric(spec: dict, current: Any) -> str:
    """One metric of formatHPAMetrics: "cpu: 40%/50%", "memory: 10Mi/100Mi", "<unknown>" when not yet read."""
    kind = spec.get("type")
    key = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods", "Object": "object",
           "External": "external"}.get(kind, "")
    source = spec.get(key) if isinstance(spec.get(key), dict) else {}
    target = source.get("target") if isinstance(source.get("target"), dict) else {}
    now = _get(current, key, "current", default={}) if isinstance(current, dict) and current.get("type") == kind else {}
    if target.get("type") == "Utilization":
        shown = f"{now['averageUtilization']}%" if now.get("averageUtilization") is not None else "<unknown>"
        wanted = f"{target['averageUtilization']}%" if target.get("averageUtilization") is not None else "<auto>"
    else:
        field = "value" if target.get("type") == "Value" else "averageValue"
        shown = str(now[field]) if now.get(field) is not None else "<unknown>"
        wanted = str(target.get(field, "<auto>"))
    if kind in ("Resource", "ContainerResource"):
        return f"{source.get('name', '')}: {shown}/{wanted}"
    return f"{shown}/{wanted}"


def _hpa_row(obj: dict, now: datetime) -> Row:
    """printHorizontalPodAutoscaler: Kind/Name, the first two metrics (then "+ N more..."), min, max, replicas."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    ref = spec.get("scaleTargetRef") if isinstance(spec.get("scaleTargetRef"), dict) else {}
    metrics = [m for m in spec.get("metrics") or [] if isinstance(m, dict)]
    current = _get(obj, "status", "currentMetrics", default=[])
    shown = [_hpa_metric(m, current[i] if i < len(current) else None) for i, m in enumerate(metrics[:2])]
    targets = ", ".join(shown) if shown else "<none>"
    if len(metrics) > 2:
        targets += f" + {len(metrics) - 2} more..."
    low = spec.get("minReplicas")
    return [_meta(obj).get("name", ""), f"{ref.get('kind', '')}/{ref.get('name', '')}", targets,
            "<unset>" if low is None else str(low), spec.get("maxReplicas", 0),
            _get(obj, "status", "currentReplicas", default=0), _age(obj, now)]


def _event_row(obj: dict, now: datetime) -> Row:
    involved = obj.get("involvedObject") or {}
    last = obj.get("lastTimestamp") or obj.get("eventTime") or _get(obj, "series", "lastObservedTime")
    first = obj.get("firstTimestamp") or obj.get("eventTime")
    source = obj.get("reportingComponent") or _get(obj, "source", "component", default="")
    return [_since(last or _meta(obj).get("creationTimestamp"), now), obj.get("type", ""), obj.get("reason", ""),
            f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}", obj.get("message", ""),
            involved.get("fieldPath", ""), source, _since(first, now) if first else "<unknown>",
            obj.get("count") or _get(obj, "series", "count", default=1), _meta(obj).get("name", "")]


def _simple(*cells: Callable[[dict], Any]) -> Printer:
    return lambda obj, now: [_meta(obj).get("name", ""), *(cell(obj) for cell in cells), _age(obj, now)]


_KINDS: dict[tuple[str, str], tuple[list[dict], Printer]] = {
    ("", "Pod"): ([NAME, _col("Ready"), _col("Status"), _col("Restarts"), AGE, _col("IP", priority=1),
                   _col("Node", priority=1), _col("Nominated Node", priority=1), _col("Readiness Gates", priority=1)],
                  _pod_row),
    ("apps", "Deployment"): ([NAME, _col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"), AGE,
                              _col("Containers", priority=1), _col("Images", priority=1),
                              _col("Selector", priority=1)], _deployment_row),
    ("apps", "ReplicaSet"): ([NAME, _col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"),
                              AGE, _col("Containers", priority=1), _col("Images", priority=1),
                              _col("Selector", priority=1)], _replicaset_row),
    ("apps", "StatefulSet"): ([NAME, _col("Ready"), AGE, _col("Containers", priority=1), _col("Images", priority=1)],
                              _statefulset_row),
    ("batch", "Job"): ([NAME, _col("Status", description="Status of the job."),
                        _col("Completions", description="The number of pods which reached phase Succeeded."),
                        _col("Duration", description="Time required to complete the job."), AGE,
                        _col("Containers", priority=1), _col("Images", priority=1), _col("Selector", priority=1)],
                       _job_row),
    ("batch", "CronJob"): ([NAME, _col("Schedule"), _col("Timezone"), _col("Suspend", "boolean"),
                            _col("Active", "integer"), _col("Last Schedule"), AGE, _col("Containers", priority=1),
                            _col("Images", priority=1), _col("Selector", priority=1)], _cronjob_row),
    ("apps", "ControllerRevision"): ([NAME, _col("Controller"), _col("Revision", "integer"), AGE],
                                     _controller_revision_row),
    ("", "Service"): ([NAME, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), AGE,
                       _col("Selector", priority=1)], _service_row),
    ("", "Node"): ([NAME, _col("Status"), _col("Roles"), AGE, _col("Version"), _col("Internal-IP", priority=1),
                    _col("External-IP", priority=1), _col("OS-Image", priority=1),
                    _col("Kernel-Version", priority=1), _col("Container-Runtime", priority=1)], _node_row),
    ("", "Namespace"): ([NAME, _col("Status"), AGE], _simple(lambda o: _get(o, "status", "phase", default=""))),
    ("", "ConfigMap"): ([NAME, _col("Data", "integer"), AGE],
                        _simple(lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))),
    ("", "Secret"): ([NAME, _col("Type"), _col("Data", "integer"), AGE],
                     _simple(lambda o: o.get("type", ""), lambda o: len(o.get("data") or {}))),
    ("", "ServiceAccount"): ([NAME, _col("Secrets", "integer"), AGE],  # upstream's printer
                             _simple(lambda o: len(o.get("secrets") or []))),
    ("", "Endpoints"): ([NAME, _col("Endpoints"), AGE], _endpoints_row),
    ("discovery.k8s.io", "EndpointSlice"): ([NAME, _col("AddressType"), _col("Ports"), _col("Endpoints"), AGE],
                                            _endpointslice_row),
    ("policy", "PodDisruptionBudget"): ([NAME, _col("Min Available"), _col("Max Unavailable"),
                                         _col("Allowed Disruptions", "integer"), AGE], _pdb_row),
    ("autoscaling", "HorizontalPodAutoscaler"): ([NAME, _col("Reference"), _col("Targets"), _col("MinPods"),
                                                  _col("MaxPods", "integer"), _col("Replicas", "integer"), AGE],
                                                 _hpa_row),
    ("", "Event"): ([_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message"),
                     _col("Subobject", priority=1), _col("Source", priority=1), _col("First Seen", priority=1),
                     _col("Count", "integer", priority=1), _col("Name", priority=1)], _event_row),
    ("", "PersistentVolume"): ([NAME, _col("Capacity"), _col("Access Modes"), _col("Reclaim Policy"), _col("Status"),
                                _col("Claim"), _col("StorageClass"), _col("Reason"), AGE,
                                _col("VolumeMode", priority=1)], _pv_row),
    ("", "PersistentVolumeClaim"): ([NAME, _col("Status"), _col("Volume"), _col("Capacity"), _col("Access Modes"),
                                     _col("StorageClass"), AGE, _col("VolumeMode", priority=1)], _pvc_row),
    ("storage.k8s.io", "StorageClass"): ([NAME, _col("Provisioner"), _col("ReclaimPolicy"),
                                          _col("VolumeBindingMode"), _col("AllowVolumeExpansion"), AGE],
                                         _storage_class_row),
    ("scheduling.k8s.io", "PriorityClass"): ([NAME, _col("Value", "integer"), _col("Global-Default", "boolean"), AGE,
                                              _col("PreemptionPolicy")], _priority_class_row),
    ("networking.k8s.io", "Ingress"): ([NAME, _col("Class"), _col("Hosts"), _col("Address"), _col("Ports"), AGE],
                                       _ingress_row),
    ("networking.k8s.io", "IngressClass"): ([NAME, _col("Controller"), _col("Parameters"), AGE], _ingress_class_row),
    ("coordination.k8s.io", "Lease"): ([NAME, _col("Holder"), AGE],
                                       _simple(lambda o: _get(o, "spec", "holderIdentity", default=""))),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): (
        [NAME, _col("Created At", "date")],
        lambda o, now: [_meta(o).get("name", ""), _created_at(_meta(o).get("creationTimestamp"))]),
}


def _created_at(value: Any) -> str:
    when = _parse_time(value)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else ""


# --- CRD additionalPrinterColumns ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"\.([A-Za-z0-9_$-]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]"
                    r"|\[\?\(@\.([A-Za-z0-9_$-]+)\s*==\s*(?:\"([^\"]*)\"|'([^']*)')\)\]")


def json_path(obj: Any, expression: str) -> Any:
    """The subset of JSONPath CRD columns use: `.spec.a`, `.a[0].b`, `.metadata.labels['x.y/z']`, `{...}` wrap,
    and the equality filter Flux's and others' columns use: `.status.conditions[?(@.type=="Ready")].status`
    (the first matching item, as kubectl prints a one-item result)."""
    expr = expression.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1].strip()
    position, value = 0, obj
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if not match:
            return None
        position = match.end()
        name, index, quoted, dquoted, field, wanted, swanted = match.groups()
        if field is not None:
            expected = wanted if wanted is not None else swanted
            items = value if isinstance(value, list) else []
            value = next((i for i in items if isinstance(i, dict) and i.get(field) == expected), None)
            if value is None:
                return None
            continue
        key: str | int = int(index) if index is not None else (name or quoted or dquoted or "")
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and len(value) > key else None
        else:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def _custom_cell(column: dict, obj: dict, now: datetime) -> Any:
    value = json_path(obj, column.get("jsonPath", ""))
    kind = column.get("type", "string")
    if value is None:
        return None
    if kind == "date":
        return _since(value, now)
    if kind in ("integer", "number", "boolean") and isinstance(value, int | float | bool):
        return value
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _custom(resource: registry.Resource) -> tuple[list[dict], Printer]:
    specs = list(resource.printer_columns)
    if not any(c.get("jsonPath") == ".metadata.creationTimestamp" for c in specs):
        specs.append({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
    columns = [NAME] + [
        _col(c["name"], c.get("type", "string"), priority=int(c.get("priority") or 0), fmt=c.get("format", ""),
             description=c.get("description", "")) for c in specs]

    def printer(obj: dict, now: datetime) -> Row:
        return [_meta(obj).get("name", "")] + [_custom_cell(c, obj, now) for c in specs]

    return columns, printer


def columns_for(resource: registry.Resource) -> tuple[list[dict], Printer]:
    """Column definitions and the row function for a resource (built-in printer or printer columns)."""
    if resource.builtin and (resource.group, resource.kind) in _KINDS:
        return _KINDS[(resource.group, resource.kind)]
    return _custom(resource)


def _row_object(obj: dict, include_object: str) -> dict | None:
    if include_object == "Object":
        return obj
    if include_object == "None":
        return None
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": _meta(obj)}


def to_table(resource: registry.Resource, objects: Iterable[dict], *, include_object: str = "Metadata",
             now: datetime | None = None, with_headers: bool = True, list_metadata: dict | None = None) -> dict:
    """A meta.k8s.io/v1 Table for `objects`; `with_headers=False` for watch events after the first."""
    now = now or datetime.now(UTC)
    columns, printer = columns_for(resource)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer(obj, now)}
        embedded = _row_object(obj, include_object)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": dict(list_metadata or {}),
            "columnDefinitions": columns if with_headers else [], "rows": rows}
