"""Protobuf tables of networking.k8s.io/v1 Ingress and IngressClass: what `kubectl create ingress`
and client-go's typed clients post. Field numbers are upstream's k8s.io/api networking/v1 (and core/v1
TypedLocalObjectReference) generated.proto (wire notes §3.4). Every field of these messages is in
the tables, the status too (a client's status is reset on create, as a JSON one's)."""

from __future__ import annotations

from reconcile.api.protometa import OBJECT_META
from reconcile.core.protomessages import INT32, STRING, Field, Message

TYPED_LOCAL_OBJECT_REFERENCE = Message("TypedLocalObjectReference", (
    Field(1, "apiGroup", STRING, pointer=True), Field(2, "kind", STRING), Field(3, "name", STRING)))
SERVICE_BACKEND_PORT = Message("ServiceBackendPort", (Field(1, "name", STRING), Field(2, "number", INT32)))
INGRESS_BACKEND = Message("IngressBackend", (
    Field(4, "service", Message("IngressServiceBackend", (
        Field(1, "name", STRING), Field(2, "port", SERVICE_BACKEND_PORT)))),
    Field(3, "resource", TYPED_LOCAL_OBJECT_REFERENCE)))
HTTP_INGRESS_PATH = Message("HTTPIngressPath", (
    Field(1, "path", STRING), Field(3, "pathType", STRING, pointer=True), Field(2, "backend", INGRESS_BACKEND)))
INGRESS_RULE = Message("IngressRule", (
    Field(1, "host", STRING),
    # IngressRuleValue is embedded (`json:",inline"`): its `http` sits in the rule in JSON
    Field(2, "ingressRuleValue", Message("IngressRuleValue", (
        Field(1, "http", Message("HTTPIngressRuleValue", (
            Field(1, "paths", HTTP_INGRESS_PATH, repeated=True),))),)), inline=True)))
INGRESS_TLS = Message("IngressTLS", (Field(1, "hosts", STRING, repeated=True), Field(2, "secretName", STRING)))
INGRESS_SPEC = Message("IngressSpec", (
    Field(4, "ingressClassName", STRING, pointer=True), Field(1, "defaultBackend", INGRESS_BACKEND),
    Field(2, "tls", INGRESS_TLS, repeated=True), Field(3, "rules", INGRESS_RULE, repeated=True)))
INGRESS_STATUS = Message("IngressStatus", (
    Field(1, "loadBalancer", Message("IngressLoadBalancerStatus", (
        Field(1, "ingress", Message("IngressLoadBalancerIngress", (
            Field(1, "ip", STRING), Field(2, "hostname", STRING),
            Field(4, "ports", Message("IngressPortStatus", (
                Field(1, "port", INT32), Field(2, "protocol", STRING), Field(3, "error", STRING, pointer=True))),
                repeated=True))), repeated=True),))),))
INGRESS_CLASS_SPEC = Message("IngressClassSpec", (
    Field(1, "controller", STRING),
    Field(2, "parameters", Message("IngressClassParametersReference", (
        Field(1, "apiGroup", STRING, pointer=True), Field(2, "kind", STRING), Field(3, "name", STRING),
        Field(4, "scope", STRING, pointer=True), Field(5, "namespace", STRING, pointer=True))))))

MESSAGES: dict[tuple[str, str], Message] = {
    ("networking.k8s.io/v1", "Ingress"): Message("Ingress", (
        Field(1, "metadata", OBJECT_META), Field(2, "spec", INGRESS_SPEC), Field(3, "status", INGRESS_STATUS))),
    ("networking.k8s.io/v1", "IngressClass"): Message("IngressClass", (
        Field(1, "metadata", OBJECT_META), Field(2, "spec", INGRESS_CLASS_SPEC))),
}
