"""Protobuf tables of the workload kinds (core/v1 Pod and Service, apps/v1 Deployment, ReplicaSet and
StatefulSet, batch/v1 Job and CronJob, policy/v1 PodDisruptionBudget and scheduling.k8s.io/v1 PriorityClass, all
served here): what `kubectl create deployment|service|job|cronjob|pdb|priorityclass` and client-go's typed clients
post. Field numbers are upstream's k8s.io/api core/v1, apps/v1, batch/v1, policy/v1 and scheduling/v1 generated.proto
(wire notes §3.4).

The pod spec is large upstream; PodSpec and Container read what kubectl's generators, everyday
manifests and the server's own admission (the projected service-account volume) carry and name every number upstream defines (`upstream`), so a part they do not read
(volumes, probes, security contexts, affinity...) is a 400 that says to send JSON, never dropped.
The smaller messages are complete. Statuses are not read: the server fills them.
"""

from __future__ import annotations

from reconcile.api.protometa import (
    INT_OR_STRING_MESSAGE,
    LABEL_SELECTOR,
    LOCAL_OBJECT_REFERENCE,
    OBJECT_META,
    QUANTITY,
    SELECTOR_REQUIREMENT,
    TIME_MESSAGE,
)
from reconcile.core.protomessages import BOOL, INT32, INT64, STRING, Field, Map, Message

# --- core/v1: containers ---------------------------------------------------------------------------

CONTAINER_PORT = Message("ContainerPort", (
    Field(1, "name", STRING), Field(2, "hostPort", INT32), Field(3, "containerPort", INT32),
    Field(4, "protocol", STRING), Field(5, "hostIP", STRING)))
_KEY_SELECTOR = (Field(1, "localObjectReference", LOCAL_OBJECT_REFERENCE, inline=True), Field(2, "key", STRING),
                 Field(3, "optional", BOOL, pointer=True))
OBJECT_FIELD_SELECTOR = Message("ObjectFieldSelector", (Field(1, "apiVersion", STRING), Field(2, "fieldPath", STRING)))
RESOURCE_FIELD_SELECTOR = Message("ResourceFieldSelector", (
    Field(1, "containerName", STRING), Field(2, "resource", STRING), Field(3, "divisor", QUANTITY)))
ENV_VAR_SOURCE = Message("EnvVarSource", (
    Field(1, "fieldRef", OBJECT_FIELD_SELECTOR), Field(2, "resourceFieldRef", RESOURCE_FIELD_SELECTOR),
    Field(3, "configMapKeyRef", Message("ConfigMapKeySelector", _KEY_SELECTOR)),
    Field(4, "secretKeyRef", Message("SecretKeySelector", _KEY_SELECTOR))))
ENV_VAR = Message("EnvVar", (Field(1, "name", STRING), Field(2, "value", STRING), Field(3, "valueFrom", ENV_VAR_SOURCE)))
_ENV_SOURCE = (Field(1, "localObjectReference", LOCAL_OBJECT_REFERENCE, inline=True),
               Field(2, "optional", BOOL, pointer=True))
ENV_FROM_SOURCE = Message("EnvFromSource", (
    Field(1, "prefix", STRING), Field(2, "configMapRef", Message("ConfigMapEnvSource", _ENV_SOURCE)),
    Field(3, "secretRef", Message("SecretEnvSource", _ENV_SOURCE))))
RESOURCE_REQUIREMENTS = Message("ResourceRequirements", (
    Field(1, "limits", Map(QUANTITY)), Field(2, "requests", Map(QUANTITY)),
    Field(3, "claims", Message("ResourceClaim", (Field(1, "name", STRING), Field(2, "request", STRING))),
          repeated=True)))
VOLUME_MOUNT = Message("VolumeMount", (
    Field(1, "name", STRING), Field(2, "readOnly", BOOL), Field(7, "recursiveReadOnly", STRING, pointer=True),
    Field(3, "mountPath", STRING), Field(4, "subPath", STRING), Field(5, "mountPropagation", STRING, pointer=True),
    Field(6, "subPathExpr", STRING)))
HTTP_GET_ACTION = Message("HTTPGetAction", (
    Field(1, "path", STRING), Field(2, "port", INT_OR_STRING_MESSAGE), Field(3, "host", STRING),
    Field(4, "scheme", STRING),
    Field(5, "httpHeaders", Message("HTTPHeader", (Field(1, "name", STRING), Field(2, "value", STRING))),
          repeated=True)))
PROBE_HANDLER = Message("ProbeHandler", (
    Field(1, "exec", Message("ExecAction", (Field(1, "command", STRING, repeated=True),))),
    Field(2, "httpGet", HTTP_GET_ACTION),
    Field(3, "tcpSocket", Message("TCPSocketAction", (
        Field(1, "port", INT_OR_STRING_MESSAGE), Field(2, "host", STRING)))),
    Field(4, "grpc", Message("GRPCAction", (Field(1, "port", INT32), Field(2, "service", STRING, pointer=True))))))
PROBE = Message("Probe", (
    Field(1, "handler", PROBE_HANDLER, inline=True), Field(2, "initialDelaySeconds", INT32),
    Field(3, "timeoutSeconds", INT32), Field(4, "periodSeconds", INT32), Field(5, "successThreshold", INT32),
    Field(6, "failureThreshold", INT32), Field(7, "terminationGracePeriodSeconds", INT64, pointer=True)))
SECCOMP_PROFILE = Message("SeccompProfile", (
    Field(1, "type", STRING), Field(2, "localhostProfile", STRING, pointer=True)))
# Not read: seLinuxOptions 3, procMount 9, windowsOptions 10, appArmorProfile 12.
SECURITY_CONTEXT = Message("SecurityContext", (
    Field(1, "capabilities", Message("Capabilities", (
        Field(1, "add", STRING, repeated=True), Field(2, "drop", STRING, repeated=True)))),
    Field(2, "privileged", BOOL, pointer=True), Field(4, "runAsUser", INT64, pointer=True),
    Field(8, "runAsGroup", INT64, pointer=True), Field(5, "runAsNonRoot", BOOL, pointer=True),
    Field(6, "readOnlyRootFilesystem", BOOL, pointer=True), Field(7, "allowPrivilegeEscalation", BOOL, pointer=True),
    Field(11, "seccompProfile", SECCOMP_PROFILE)), upstream=frozenset(range(1, 13)))
# Not read: seLinuxOptions 1, windowsOptions 8, appArmorProfile 11, seLinuxChangePolicy 13.
POD_SECURITY_CONTEXT = Message("PodSecurityContext", (
    Field(2, "runAsUser", INT64, pointer=True), Field(6, "runAsGroup", INT64, pointer=True),
    Field(3, "runAsNonRoot", BOOL, pointer=True), Field(4, "supplementalGroups", INT64, repeated=True),
    Field(12, "supplementalGroupsPolicy", STRING, pointer=True), Field(5, "fsGroup", INT64, pointer=True),
    Field(7, "sysctls", Message("Sysctl", (Field(1, "name", STRING), Field(2, "value", STRING))), repeated=True),
    Field(9, "fsGroupChangePolicy", STRING, pointer=True), Field(10, "seccompProfile", SECCOMP_PROFILE)),
    upstream=frozenset(range(1, 14)))
# Not read: lifecycle 12, volumeDevices 21, resizePolicy 23.
CONTAINER = Message("Container", (
    Field(1, "name", STRING), Field(2, "image", STRING), Field(3, "command", STRING, repeated=True),
    Field(4, "args", STRING, repeated=True), Field(5, "workingDir", STRING),
    Field(6, "ports", CONTAINER_PORT, repeated=True), Field(19, "envFrom", ENV_FROM_SOURCE, repeated=True),
    Field(7, "env", ENV_VAR, repeated=True), Field(8, "resources", RESOURCE_REQUIREMENTS),
    Field(24, "restartPolicy", STRING, pointer=True), Field(9, "volumeMounts", VOLUME_MOUNT, repeated=True),
    Field(13, "terminationMessagePath", STRING), Field(20, "terminationMessagePolicy", STRING),
    Field(15, "securityContext", SECURITY_CONTEXT), Field(10, "livenessProbe", PROBE), Field(11, "readinessProbe", PROBE), Field(22, "startupProbe", PROBE),
    Field(14, "imagePullPolicy", STRING), Field(16, "stdin", BOOL), Field(17, "stdinOnce", BOOL),
    Field(18, "tty", BOOL)), upstream=frozenset(range(1, 25)))

# --- core/v1: pods --------------------------------------------------------------------------------

TOLERATION = Message("Toleration", (
    Field(1, "key", STRING), Field(2, "operator", STRING), Field(3, "value", STRING), Field(4, "effect", STRING),
    Field(5, "tolerationSeconds", INT64, pointer=True)))
HOST_ALIAS = Message("HostAlias", (Field(1, "ip", STRING), Field(2, "hostnames", STRING, repeated=True)))
KEY_TO_PATH = Message("KeyToPath", (
    Field(1, "key", STRING), Field(2, "path", STRING), Field(3, "mode", INT32, pointer=True)))
DOWNWARD_API_VOLUME_FILE = Message("DownwardAPIVolumeFile", (
    Field(1, "path", STRING), Field(2, "fieldRef", OBJECT_FIELD_SELECTOR),
    Field(3, "resourceFieldRef", RESOURCE_FIELD_SELECTOR), Field(4, "mode", INT32, pointer=True)))
_KEYS_PROJECTION = (Field(1, "localObjectReference", LOCAL_OBJECT_REFERENCE, inline=True),
                    Field(2, "items", KEY_TO_PATH, repeated=True), Field(4, "optional", BOOL, pointer=True))
# What the service-account admission injects into every pod (`kube-api-access-*`: a token, the CA's
# ConfigMap, the namespace through the downward API), so a pod read back and re-sent carries it
# (`kubectl debug --copy-to`). Not read: clusterTrustBundle 5 (alpha in 1.32).
VOLUME_PROJECTION = Message("VolumeProjection", (
    Field(1, "secret", Message("SecretProjection", _KEYS_PROJECTION)),
    Field(2, "downwardAPI", Message("DownwardAPIProjection", (
        Field(1, "items", DOWNWARD_API_VOLUME_FILE, repeated=True),))),
    Field(3, "configMap", Message("ConfigMapProjection", _KEYS_PROJECTION)),
    Field(4, "serviceAccountToken", Message("ServiceAccountTokenProjection", (
        Field(1, "audience", STRING), Field(2, "expirationSeconds", INT64, pointer=True), Field(3, "path", STRING))))),
    upstream=frozenset(range(1, 6)))
# Not read: the network, cloud, CSI, ephemeral and image volume kinds (every number but these seven);
# a pod using one is refused, not stored without it.
VOLUME_SOURCE = Message("VolumeSource", (
    Field(1, "hostPath", Message("HostPathVolumeSource", (
        Field(1, "path", STRING), Field(2, "type", STRING, pointer=True)))),
    Field(2, "emptyDir", Message("EmptyDirVolumeSource", (Field(1, "medium", STRING), Field(2, "sizeLimit", QUANTITY)))),
    Field(6, "secret", Message("SecretVolumeSource", (
        Field(1, "secretName", STRING), Field(2, "items", KEY_TO_PATH, repeated=True),
        Field(3, "defaultMode", INT32, pointer=True), Field(4, "optional", BOOL, pointer=True)))),
    Field(16, "downwardAPI", Message("DownwardAPIVolumeSource", (
        Field(1, "items", DOWNWARD_API_VOLUME_FILE, repeated=True), Field(2, "defaultMode", INT32, pointer=True)))),
    Field(26, "projected", Message("ProjectedVolumeSource", (
        Field(1, "sources", VOLUME_PROJECTION, repeated=True), Field(2, "defaultMode", INT32, pointer=True)))),
    Field(10, "persistentVolumeClaim", Message("PersistentVolumeClaimVolumeSource", (
        Field(1, "claimName", STRING), Field(2, "readOnly", BOOL)))),
    Field(19, "configMap", Message("ConfigMapVolumeSource", (
        Field(1, "localObjectReference", LOCAL_OBJECT_REFERENCE, inline=True),
        Field(2, "items", KEY_TO_PATH, repeated=True), Field(3, "defaultMode", INT32, pointer=True),
        Field(4, "optional", BOOL, pointer=True))))),
    upstream=frozenset(range(1, 31)))
VOLUME = Message("Volume", (Field(1, "name", STRING), Field(2, "volumeSource", VOLUME_SOURCE, inline=True)))
NODE_SELECTOR_TERM = Message("NodeSelectorTerm", (
    Field(1, "matchExpressions", SELECTOR_REQUIREMENT, repeated=True),
    Field(2, "matchFields", SELECTOR_REQUIREMENT, repeated=True)))
POD_AFFINITY_TERM = Message("PodAffinityTerm", (
    Field(1, "labelSelector", LABEL_SELECTOR), Field(2, "namespaces", STRING, repeated=True),
    Field(3, "topologyKey", STRING), Field(4, "namespaceSelector", LABEL_SELECTOR),
    Field(5, "matchLabelKeys", STRING, repeated=True), Field(6, "mismatchLabelKeys", STRING, repeated=True)))
_POD_AFFINITY = (
    Field(1, "requiredDuringSchedulingIgnoredDuringExecution", POD_AFFINITY_TERM, repeated=True),
    Field(2, "preferredDuringSchedulingIgnoredDuringExecution", Message("WeightedPodAffinityTerm", (
        Field(1, "weight", INT32), Field(2, "podAffinityTerm", POD_AFFINITY_TERM))), repeated=True))
AFFINITY = Message("Affinity", (
    Field(1, "nodeAffinity", Message("NodeAffinity", (
        Field(1, "requiredDuringSchedulingIgnoredDuringExecution", Message("NodeSelector", (
            Field(1, "nodeSelectorTerms", NODE_SELECTOR_TERM, repeated=True),))),
        Field(2, "preferredDuringSchedulingIgnoredDuringExecution", Message("PreferredSchedulingTerm", (
            Field(1, "weight", INT32), Field(2, "preference", NODE_SELECTOR_TERM))), repeated=True)))),
    Field(2, "podAffinity", Message("PodAffinity", _POD_AFFINITY)),
    Field(3, "podAntiAffinity", Message("PodAntiAffinity", _POD_AFFINITY))))
TOPOLOGY_SPREAD_CONSTRAINT = Message("TopologySpreadConstraint", (
    Field(1, "maxSkew", INT32), Field(2, "topologyKey", STRING), Field(3, "whenUnsatisfiable", STRING),
    Field(4, "labelSelector", LABEL_SELECTOR), Field(5, "minDomains", INT32, pointer=True),
    Field(6, "nodeAffinityPolicy", STRING, pointer=True), Field(7, "nodeTaintsPolicy", STRING, pointer=True),
    Field(8, "matchLabelKeys", STRING, repeated=True)))
# Not read: dnsConfig 26,
# ephemeralContainers 34, resourceClaims 39, resources 40.
POD_SPEC = Message("PodSpec", (
    Field(1, "volumes", VOLUME, repeated=True), Field(20, "initContainers", CONTAINER, repeated=True), Field(2, "containers", CONTAINER, repeated=True),
    Field(3, "restartPolicy", STRING), Field(4, "terminationGracePeriodSeconds", INT64, pointer=True),
    Field(5, "activeDeadlineSeconds", INT64, pointer=True), Field(6, "dnsPolicy", STRING),
    Field(7, "nodeSelector", Map(STRING)), Field(8, "serviceAccountName", STRING),
    Field(9, "serviceAccount", STRING), Field(21, "automountServiceAccountToken", BOOL, pointer=True),
    Field(10, "nodeName", STRING), Field(11, "hostNetwork", BOOL), Field(12, "hostPID", BOOL),
    Field(13, "hostIPC", BOOL), Field(14, "securityContext", POD_SECURITY_CONTEXT), Field(27, "shareProcessNamespace", BOOL, pointer=True),
    Field(15, "imagePullSecrets", LOCAL_OBJECT_REFERENCE, repeated=True), Field(16, "hostname", STRING),
    Field(17, "subdomain", STRING), Field(18, "affinity", AFFINITY), Field(19, "schedulerName", STRING),
    Field(22, "tolerations", TOLERATION, repeated=True), Field(23, "hostAliases", HOST_ALIAS, repeated=True),
    Field(24, "priorityClassName", STRING), Field(25, "priority", INT32, pointer=True),
    Field(28, "readinessGates", Message("PodReadinessGate", (Field(1, "conditionType", STRING),)), repeated=True),
    Field(29, "runtimeClassName", STRING, pointer=True), Field(30, "enableServiceLinks", BOOL, pointer=True),
    Field(31, "preemptionPolicy", STRING, pointer=True), Field(32, "overhead", Map(QUANTITY)),
    Field(33, "topologySpreadConstraints", TOPOLOGY_SPREAD_CONSTRAINT, repeated=True),
    Field(35, "setHostnameAsFQDN", BOOL, pointer=True),
    Field(36, "os", Message("PodOS", (Field(1, "name", STRING),))), Field(37, "hostUsers", BOOL, pointer=True),
    Field(38, "schedulingGates", Message("PodSchedulingGate", (Field(1, "name", STRING),)), repeated=True)),
    upstream=frozenset(range(1, 41)))
# A template's metadata keeps creationTimestamp: clients send the zero time, which JSON writes as
# null and the server stores so (at the top level the server sets its own).
TEMPLATE_META = Message("ObjectMeta", (*OBJECT_META.fields, Field(8, "creationTimestamp", TIME_MESSAGE)))
POD_TEMPLATE_SPEC = Message("PodTemplateSpec", (Field(1, "metadata", TEMPLATE_META), Field(2, "spec", POD_SPEC)))

# --- core/v1: services ----------------------------------------------------------------------------

SERVICE_PORT = Message("ServicePort", (
    Field(1, "name", STRING), Field(2, "protocol", STRING), Field(6, "appProtocol", STRING, pointer=True),
    Field(3, "port", INT32), Field(4, "targetPort", INT_OR_STRING_MESSAGE), Field(5, "nodePort", INT32)))
SERVICE_SPEC = Message("ServiceSpec", (
    Field(1, "ports", SERVICE_PORT, repeated=True), Field(2, "selector", Map(STRING)), Field(3, "clusterIP", STRING),
    Field(18, "clusterIPs", STRING, repeated=True), Field(4, "type", STRING),
    Field(5, "externalIPs", STRING, repeated=True), Field(7, "sessionAffinity", STRING),
    Field(8, "loadBalancerIP", STRING), Field(9, "loadBalancerSourceRanges", STRING, repeated=True),
    Field(10, "externalName", STRING), Field(11, "externalTrafficPolicy", STRING),
    Field(12, "healthCheckNodePort", INT32), Field(13, "publishNotReadyAddresses", BOOL),
    Field(14, "sessionAffinityConfig", Message("SessionAffinityConfig", (
        Field(1, "clientIP", Message("ClientIPConfig", (Field(1, "timeoutSeconds", INT32, pointer=True),))),))),
    Field(19, "ipFamilies", STRING, repeated=True), Field(17, "ipFamilyPolicy", STRING, pointer=True),
    Field(20, "allocateLoadBalancerNodePorts", BOOL, pointer=True), Field(21, "loadBalancerClass", STRING, pointer=True),
    Field(22, "internalTrafficPolicy", STRING, pointer=True), Field(23, "trafficDistribution", STRING, pointer=True)))

# --- apps/v1 --------------------------------------------------------------------------------------

DEPLOYMENT_SPEC = Message("DeploymentSpec", (
    Field(1, "replicas", INT32, pointer=True), Field(2, "selector", LABEL_SELECTOR),
    Field(3, "template", POD_TEMPLATE_SPEC),
    Field(4, "strategy", Message("DeploymentStrategy", (
        Field(1, "type", STRING), Field(2, "rollingUpdate", Message("RollingUpdateDeployment", (
            Field(1, "maxUnavailable", INT_OR_STRING_MESSAGE), Field(2, "maxSurge", INT_OR_STRING_MESSAGE))))))),
    Field(5, "minReadySeconds", INT32), Field(6, "revisionHistoryLimit", INT32, pointer=True),
    Field(7, "paused", BOOL), Field(9, "progressDeadlineSeconds", INT32, pointer=True)))
REPLICA_SET_SPEC = Message("ReplicaSetSpec", (
    Field(1, "replicas", INT32, pointer=True), Field(4, "minReadySeconds", INT32),
    Field(2, "selector", LABEL_SELECTOR), Field(3, "template", POD_TEMPLATE_SPEC)))

# PersistentVolumeClaim as a StatefulSet's volumeClaimTemplates hold it (k8s.io/api core/v1): the
# data sources (7, 8) and volumeAttributesClassName (9) are not read.
PERSISTENT_VOLUME_CLAIM_SPEC = Message("PersistentVolumeClaimSpec", (
    Field(1, "accessModes", STRING, repeated=True),
    Field(2, "resources", Message("VolumeResourceRequirements", (
        Field(1, "limits", Map(QUANTITY)), Field(2, "requests", Map(QUANTITY))))),
    Field(3, "volumeName", STRING), Field(4, "selector", LABEL_SELECTOR),
    Field(5, "storageClassName", STRING, pointer=True), Field(6, "volumeMode", STRING, pointer=True)),
    upstream=frozenset(range(1, 10)))
PERSISTENT_VOLUME_CLAIM_TEMPLATE = Message("PersistentVolumeClaim", (
    Field(1, "metadata", TEMPLATE_META), Field(2, "spec", PERSISTENT_VOLUME_CLAIM_SPEC)))
STATEFUL_SET_SPEC = Message("StatefulSetSpec", (
    Field(1, "replicas", INT32, pointer=True), Field(2, "selector", LABEL_SELECTOR),
    Field(3, "template", POD_TEMPLATE_SPEC),
    Field(4, "volumeClaimTemplates", PERSISTENT_VOLUME_CLAIM_TEMPLATE, repeated=True),
    Field(5, "serviceName", STRING), Field(6, "podManagementPolicy", STRING),
    Field(7, "updateStrategy", Message("StatefulSetUpdateStrategy", (
        Field(1, "type", STRING), Field(2, "rollingUpdate", Message("RollingUpdateStatefulSetStrategy", (
            Field(1, "partition", INT32, pointer=True), Field(2, "maxUnavailable", INT_OR_STRING_MESSAGE))))))),
    Field(8, "revisionHistoryLimit", INT32, pointer=True), Field(9, "minReadySeconds", INT32),
    Field(10, "persistentVolumeClaimRetentionPolicy", Message("StatefulSetPersistentVolumeClaimRetentionPolicy", (
        Field(1, "whenDeleted", STRING), Field(2, "whenScaled", STRING)))),
    Field(11, "ordinals", Message("StatefulSetOrdinals", (Field(1, "start", INT32),)))))

# --- batch/v1, policy/v1, scheduling.k8s.io/v1: what `kubectl create job|cronjob|pdb|priorityclass`
# send.

# Not read: podFailurePolicy 11, successPolicy 16, scheduling 17 (newer than 1.32).
JOB_SPEC = Message("JobSpec", (
    Field(1, "parallelism", INT32, pointer=True), Field(2, "completions", INT32, pointer=True),
    Field(3, "activeDeadlineSeconds", INT64, pointer=True), Field(7, "backoffLimit", INT32, pointer=True),
    Field(12, "backoffLimitPerIndex", INT32, pointer=True), Field(13, "maxFailedIndexes", INT32, pointer=True),
    Field(4, "selector", LABEL_SELECTOR), Field(5, "manualSelector", BOOL, pointer=True),
    Field(6, "template", POD_TEMPLATE_SPEC), Field(8, "ttlSecondsAfterFinished", INT32, pointer=True),
    Field(9, "completionMode", STRING, pointer=True), Field(10, "suspend", BOOL, pointer=True),
    Field(14, "podReplacementPolicy", STRING, pointer=True), Field(15, "managedBy", STRING, pointer=True)),
    upstream=frozenset(range(1, 18)))
CRON_JOB_SPEC = Message("CronJobSpec", (
    Field(1, "schedule", STRING), Field(8, "timeZone", STRING, pointer=True),
    Field(2, "startingDeadlineSeconds", INT64, pointer=True), Field(3, "concurrencyPolicy", STRING),
    Field(4, "suspend", BOOL, pointer=True),
    Field(5, "jobTemplate", Message("JobTemplateSpec", (Field(1, "metadata", TEMPLATE_META), Field(2, "spec", JOB_SPEC)))),
    Field(6, "successfulJobsHistoryLimit", INT32, pointer=True), Field(7, "failedJobsHistoryLimit", INT32, pointer=True)))
POD_DISRUPTION_BUDGET_SPEC = Message("PodDisruptionBudgetSpec", (
    Field(1, "minAvailable", INT_OR_STRING_MESSAGE), Field(2, "selector", LABEL_SELECTOR),
    Field(3, "maxUnavailable", INT_OR_STRING_MESSAGE), Field(4, "unhealthyPodEvictionPolicy", STRING, pointer=True)))

MESSAGES: dict[tuple[str, str], Message] = {
    ("v1", "Pod"): Message("Pod", (Field(1, "metadata", OBJECT_META), Field(2, "spec", POD_SPEC))),
    ("v1", "Service"): Message("Service", (Field(1, "metadata", OBJECT_META), Field(2, "spec", SERVICE_SPEC))),
    ("apps/v1", "Deployment"): Message("Deployment", (
        Field(1, "metadata", OBJECT_META), Field(2, "spec", DEPLOYMENT_SPEC))),
    ("apps/v1", "ReplicaSet"): Message("ReplicaSet", (
        Field(1, "metadata", OBJECT_META), Field(2, "spec", REPLICA_SET_SPEC))),
    ("apps/v1", "StatefulSet"): Message("StatefulSet", (
        Field(1, "metadata", OBJECT_META), Field(2, "spec", STATEFUL_SET_SPEC))),
    ("batch/v1", "Job"): Message("Job", (Field(1, "metadata", OBJECT_META), Field(2, "spec", JOB_SPEC))),
    ("batch/v1", "CronJob"): Message("CronJob", (Field(1, "metadata", OBJECT_META), Field(2, "spec", CRON_JOB_SPEC))),
    ("policy/v1", "PodDisruptionBudget"): Message("PodDisruptionBudget", (
        Field(1, "metadata", OBJECT_META), Field(2, "spec", POD_DISRUPTION_BUDGET_SPEC))),
    ("scheduling.k8s.io/v1", "PriorityClass"): Message("PriorityClass", (
        Field(1, "metadata", OBJECT_META), Field(2, "value", INT32), Field(3, "globalDefault", BOOL),
        Field(4, "description", STRING), Field(5, "preemptionPolicy", STRING, pointer=True))),
}
