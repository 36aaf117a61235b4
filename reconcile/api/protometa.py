"""Protobuf tables of the meta/v1, resource and intstr messages every kind's table embeds (field
numbers from upstream's apimachinery generated.proto files; wire notes §3.4). Kept apart from the
kinds so each kind's module (`protobodies`, `protoworkloads`) can share them."""

from __future__ import annotations

from reconcile.core.protomessages import BOOL, INT32, INT64, INT_OR_STRING, STRING, TIME, Field, Map, Message

TIME_MESSAGE = Message("Time", (Field(1, "seconds", INT64), Field(2, "nanos", INT32)), shape=TIME)
OWNER_REFERENCE = Message("OwnerReference", (
    Field(5, "apiVersion", STRING), Field(1, "kind", STRING), Field(3, "name", STRING), Field(4, "uid", STRING),
    Field(6, "controller", BOOL, pointer=True), Field(7, "blockOwnerDeletion", BOOL, pointer=True)))
# What a client may set on a new object; the timestamps (kubectl sends creationTimestamp as the zero
# time, JSON's null), selfLink and managedFields are the server's, and skipped.
OBJECT_META = Message("ObjectMeta", (
    Field(1, "name", STRING), Field(2, "generateName", STRING), Field(3, "namespace", STRING),
    Field(5, "uid", STRING), Field(6, "resourceVersion", STRING), Field(7, "generation", INT64),
    Field(11, "labels", Map(STRING)), Field(12, "annotations", Map(STRING)),
    Field(13, "ownerReferences", OWNER_REFERENCE, repeated=True), Field(14, "finalizers", STRING, repeated=True)))
SELECTOR_REQUIREMENT = Message("SelectorRequirement", (  # Field- and LabelSelectorRequirement alike
    Field(1, "key", STRING), Field(2, "operator", STRING), Field(3, "values", STRING, repeated=True)))
QUANTITY = Message("Quantity", (Field(1, "string", STRING),), unwrap=True)  # "500m" in JSON
LABEL_SELECTOR = Message("LabelSelector", (
    Field(1, "matchLabels", Map(STRING)), Field(2, "matchExpressions", SELECTOR_REQUIREMENT, repeated=True)))
# {type 1 (0 int, 1 string), intVal 2, strVal 3}; JSON: the int or the string
INT_OR_STRING_MESSAGE = Message("IntOrString", (
    Field(1, "type", INT64), Field(2, "intVal", INT32), Field(3, "strVal", STRING)), shape=INT_OR_STRING)
OBJECT_REFERENCE = Message("ObjectReference", (
    Field(1, "kind", STRING), Field(2, "namespace", STRING), Field(3, "name", STRING), Field(4, "uid", STRING),
    Field(5, "apiVersion", STRING), Field(6, "resourceVersion", STRING), Field(7, "fieldPath", STRING)))
LOCAL_OBJECT_REFERENCE = Message("LocalObjectReference", (Field(1, "name", STRING),))
# meta/v1 DeleteOptions: every field is a pointer but dryRun (drain's pod DELETE sends it, §3.2)
DELETE_OPTIONS = Message("DeleteOptions", (
    Field(1, "gracePeriodSeconds", INT64, pointer=True),
    Field(2, "preconditions", Message("Preconditions", (
        Field(1, "uid", STRING, pointer=True), Field(2, "resourceVersion", STRING, pointer=True)))),
    Field(3, "orphanDependents", BOOL, pointer=True), Field(4, "propagationPolicy", STRING, pointer=True),
    Field(5, "dryRun", STRING, repeated=True),
    Field(6, "ignoreStoreReadErrorWithClusterBreakingPotential", BOOL, pointer=True)))

__all__ = ["DELETE_OPTIONS", "INT_OR_STRING_MESSAGE", "LABEL_SELECTOR", "LOCAL_OBJECT_REFERENCE", "OBJECT_META",
           "OBJECT_REFERENCE", "OWNER_REFERENCE", "QUANTITY", "SELECTOR_REQUIREMENT", "TIME_MESSAGE"]
