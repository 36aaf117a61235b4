"""What upstream's networking validation (pkg/apis/networking/validation) checks of an Ingress and an
IngressClass beyond their schemas, worded as it words them, each cause naming its field:

- an Ingress has rules or a defaultBackend; a rule's host is a DNS-1123 subdomain, not an IP, with
  `*` only as the whole leftmost label; every HTTP path has a pathType (Exact, Prefix or
  ImplementationSpecific), and Exact and Prefix paths start with `/` and hold no `//`, `/./`,
  `/../` or encoded slash; a backend is a service (a DNS-1035 name and a port number or name,
  never both) or a resource, never both; TLS hosts and secret names are DNS names too;
- the `kubernetes.io/ingress.class` annotation, when set with ingressClassName, must match it;
- status addresses are IPs and hostnames;
- an IngressClass's controller is a domain-prefixed path of at most 250 characters and never
  changes; its parameters name a kind and a name, with a scope of Cluster or Namespace (and a
  namespace only for the latter).

Pure functions of the objects (unit-tested alone); `strategies.networking` calls them.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from reconcile.api.strategies import services
from reconcile.core import errors, names

Cause = dict[str, str]
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")  # upstream lists them sorted
_INVALID_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_SUFFIXES = ("/..", "/.")
_WILDCARD_FMT = "\\*\\." + "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_WILDCARD_RE = re.compile(_WILDCARD_FMT)
_WILDCARD_MESSAGE = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which "
                     "must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric "
                     f"character (e.g. '*.example.com', regex used for validation is '{_WILDCARD_FMT}')")
_HTTP_PATH_FMT = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+"
_HTTP_PATH_RE = re.compile(_HTTP_PATH_FMT)
MAX_CONTROLLER_LENGTH = 250
SCOPES = ("Cluster", "Namespace")


def _invalid(field: str, value: Any, message: str) -> Cause:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return errors.cause(field, f"Invalid value: {shown}: {message}")


def _required(field: str, detail: str = "") -> Cause:
    return errors.cause(field, f"Required value: {detail}" if detail else "Required value", "FieldValueRequired")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def wildcard_subdomain_errors(value: str) -> list[str]:
    """validation.IsWildcardDNS1123Subdomain."""
    problems = []
    if len(value) > names.DNS1123_SUBDOMAIN_MAX_LENGTH:
        problems.append(names.max_len_error(names.DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _WILDCARD_RE.fullmatch(value):
        problems.append(_WILDCARD_MESSAGE)
    return problems


def _host_causes(host: str, field: str) -> list[Cause]:
    check = wildcard_subdomain_errors if "*" in host else names.dns1123_subdomain_errors
    return [_invalid(field, host, message) for message in check(host)]


def _path_segment_errors(value: str) -> list[str]:
    """path.IsValidPathSegmentName: what may stand in a URL path segment."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in value]


def typed_reference_causes(ref: dict[str, Any], field: str) -> list[Cause]:
    """validateIngressTypedLocalObjectReference: a group (a DNS subdomain), a kind and a name."""
    causes: list[Cause] = []
    group = ref.get("apiGroup")
    if group is not None:
        causes += [_invalid(f"{field}.apiGroup", group, m) for m in names.dns1123_subdomain_errors(str(group))]
    for key in ("kind", "name"):
        value = ref.get(key) or ""
        if not value:
            causes.append(_required(f"{field}.{key}", f"{key} is required"))
        else:
            causes += [_invalid(f"{field}.{key}", value, m) for m in _path_segment_errors(str(value))]
    return causes


def backend_causes(backend: dict[str, Any], field: str) -> list[Cause]:
    """validateIngressBackend: a service (name, and a port number or name) or a resource."""
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [_invalid(field, "", "cannot set both resource and service backends")]
    if resource is not None:
        return typed_reference_causes(resource, f"{field}.resource")
    if service is None:
        return [_invalid(field, "", "resource or service backend is required")]
    causes: list[Cause] = []
    name = service.get("name") or ""
    if not name:
        causes.append(_required(f"{field}.service.name"))
    else:
        causes += [_invalid(f"{field}.service.name", name, m) for m in names.dns1035_label_errors(name)]
    port = service.get("port") or {}
    port_name, number = port.get("name") or "", port.get("number") or 0
    if port_name and number:
        causes.append(_invalid(field, "", "cannot set both port name & port number"))
    elif port_name:
        causes += [_invalid(f"{field}.service.port.name", port_name, m) for m in services.port_name_errors(port_name)]
    elif number:
        if not 1 <= number <= 65535:
            causes.append(_invalid(f"{field}.service.port.number", number, "must be between 1 and 65535, inclusive"))
    else:
        causes.append(_required(field, "port name or number is required"))
    return causes


def http_path_causes(path: dict[str, Any], field: str) -> list[Cause]:
    """validateHTTPIngressPath: the pathType decides what the path may be."""
    kind = path.get("pathType")
    if kind is None:
        return [_required(f"{field}.pathType", "pathType must be specified")]
    value = path.get("path") or ""
    causes: list[Cause] = []
    if kind in ("Exact", "Prefix"):
        if not value.startswith("/"):
            causes.append(_invalid(f"{field}.path", value, "must be an absolute path"))
        causes += [_invalid(f"{field}.path", value, f"must not contain '{bad}'")
                   for bad in _INVALID_SEQUENCES if bad in value]
        causes += [_invalid(f"{field}.path", value, f"cannot end with '{bad}'")
                   for bad in _INVALID_SUFFIXES if value.endswith(bad)]
    elif kind == "ImplementationSpecific":
        if value and not value.startswith("/"):
            causes.append(_invalid(f"{field}.path", value, "must be an absolute path"))
    else:
        supported = ", ".join(f'"{t}"' for t in PATH_TYPES)
        causes.append(errors.cause(f"{field}.pathType", f'Unsupported value: "{kind}": supported values: {supported}',
                                   "FieldValueNotSupported"))
    return causes + backend_causes(path.get("backend") or {}, f"{field}.backend")


def rule_causes(rule: dict[str, Any], field: str) -> list[Cause]:
    """validateIngressRules for one rule: its host, then its HTTP paths."""
    causes: list[Cause] = []
    host = rule.get("host") or ""
    if host:
        if _is_ip(host):
            causes.append(_invalid(f"{field}.host", host, "must be a DNS name, not an IP address"))
        causes += _host_causes(host, f"{field}.host")
    http = rule.get("http")
    if http is not None:
        paths = http.get("paths") or []
        if not paths:
            causes.append(_required(f"{field}.http.paths"))
        for i, path in enumerate(paths):
            causes += http_path_causes(path, f"{field}.http.paths[{i}]")
    return causes


def tls_causes(tls: list[dict[str, Any]], field: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, entry in enumerate(tls):
        for j, host in enumerate(entry.get("hosts") or []):
            causes += _host_causes(str(host), f"{field}[{i}].hosts[{j}]")
        secret = entry.get("secretName") or ""
        if secret:
            causes += [_invalid(f"{field}[{i}].secretName", secret, m) for m in names.dns1123_subdomain_errors(secret)]
    return causes


def _rules_shown(rules: Any) -> str:
    """How field.Invalid prints the (empty) rules it refuses: Go's %#v of the slice."""
    return "[]networking.IngressRule(nil)" if rules is None else "[]networking.IngressRule{}"


def spec_causes(spec: dict[str, Any]) -> list[Cause]:
    """ValidateIngressSpec."""
    causes: list[Cause] = []
    rules = spec.get("rules")
    if not rules and spec.get("defaultBackend") is None:
        causes.append(errors.cause("spec", f"Invalid value: {_rules_shown(rules)}: either `defaultBackend` or "
                                           "`rules` must be specified"))
    if spec.get("defaultBackend") is not None:
        causes += backend_causes(spec["defaultBackend"], "spec.defaultBackend")
    for i, rule in enumerate(rules or []):
        causes += rule_causes(rule, f"spec.rules[{i}]")
    causes += tls_causes(spec.get("tls") or [], "spec.tls")
    class_name = spec.get("ingressClassName")
    if class_name is not None:
        causes += [_invalid("spec.ingressClassName", class_name, m)
                   for m in names.dns1123_subdomain_errors(str(class_name))]
    return causes


def status_causes(status: dict[str, Any]) -> list[Cause]:
    """ValidateIngressLoadBalancerStatus: addresses are IPs, hostnames DNS names."""
    causes: list[Cause] = []
    for i, point in enumerate((status.get("loadBalancer") or {}).get("ingress") or []):
        field = f"status.loadBalancer.ingress[{i}]"
        ip, hostname = point.get("ip") or "", point.get("hostname") or ""
        if ip and not _is_ip(ip):
            causes.append(_invalid(f"{field}.ip", ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
        if hostname:
            causes += [_invalid(f"{field}.hostname", hostname, m) for m in names.dns1123_subdomain_errors(hostname)]
            if _is_ip(hostname):
                causes.append(_invalid(f"{field}.hostname", hostname, "must be a DNS name, not an IP address"))
    return causes


def ingress_causes(obj: dict[str, Any], *, creating: bool) -> list[Cause]:
    """An Ingress as created (the annotation must match the class field) or updated."""
    spec = obj.get("spec") or {}
    causes = spec_causes(spec) + status_causes(obj.get("status") or {})
    annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(CLASS_ANNOTATION)
    class_name = spec.get("ingressClassName")
    if creating and annotation is not None and class_name is not None and annotation != class_name:
        causes.append(_invalid(f"annotations.{CLASS_ANNOTATION}", annotation,
                               "must match `ingressClassName` when both are specified"))
    return causes


def controller_causes(controller: str, field: str) -> list[Cause]:
    """IsDomainPrefixedPath, after the length limit."""
    causes: list[Cause] = []
    if len(controller) > MAX_CONTROLLER_LENGTH:
        causes.append(errors.cause(field, f"Too long: may not be more than {MAX_CONTROLLER_LENGTH} bytes",
                                   "FieldValueTooLong"))
    if not controller:
        return causes + [_required(field)]
    host, _, path = controller.partition("/")
    if not host or not path:
        return causes + [_invalid(field, controller, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    causes += [_invalid(field, host, m) for m in names.dns1123_subdomain_errors(host)]
    if not _HTTP_PATH_RE.fullmatch(path):
        causes.append(_invalid(field, path, f"Invalid path (regex used for validation is '{_HTTP_PATH_FMT}')"))
    return causes


def parameters_causes(params: dict[str, Any], field: str) -> list[Cause]:
    """validateIngressClassParametersReference."""
    causes = typed_reference_causes(params, field)
    scope = params.get("scope")
    if scope is None:
        return causes + [_required(f"{field}.scope")]
    if scope not in SCOPES:
        supported = ", ".join(f'"{s}"' for s in SCOPES)
        return causes + [errors.cause(f"{field}.scope", f'Unsupported value: "{scope}": supported values: {supported}',
                                      "FieldValueNotSupported")]
    namespace = params.get("namespace")
    if scope == "Namespace":
        if namespace is None:
            causes.append(_required(f"{field}.namespace", "`parameters.scope` is set to 'Namespace'"))
        else:
            causes += [_invalid(f"{field}.namespace", namespace, m) for m in names.dns1123_label_errors(str(namespace))]
    elif namespace is not None:
        causes.append(errors.cause(f"{field}.namespace", "Forbidden: `parameters.scope` is set to 'Cluster'",
                                   "FieldValueForbidden"))
    return causes


def class_causes(obj: dict[str, Any]) -> list[Cause]:
    """ValidateIngressClass."""
    spec = obj.get("spec") or {}
    causes = controller_causes(str(spec.get("controller") or ""), "spec.controller")
    if spec.get("parameters") is not None:
        causes += parameters_causes(spec["parameters"], "spec.parameters")
    return causes


def class_update_causes(old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """ValidateIngressClassUpdate: the controller is immutable."""
    before, after = (old.get("spec") or {}).get("controller"), (new.get("spec") or {}).get("controller")
    causes = []
    if before != after:
        causes.append(_invalid("spec.controller", after or "", "field is immutable"))
    return causes + class_causes(new)


def default_class(classes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The class new Ingresses get (DefaultIngressClass's getDefaultClass): of those annotated
    default, the newest; of equally new ones, the first by name."""
    marked = [c for c in classes
              if ((c.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"]
    if not marked:
        return None
    marked.sort(key=lambda c: c["metadata"].get("name", ""))
    return max(marked, key=lambda c: c["metadata"].get("creationTimestamp") or "")
