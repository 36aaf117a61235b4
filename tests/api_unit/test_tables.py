"""Server-side printing (wire notes §4.1): per-kind columns and CRD printer columns."""

from __future__ import annotations

from datetime import UTC, datetime

from reconcile.api import tables

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _names(table: dict) -> list[str]:
    return [c["name"] for c in table["columnDefinitions"]]


def _pod(**status) -> dict:
    return {"metadata": {"name": "p1", "namespace": "default", "creationTimestamp": "2026-01-01T11:55:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node1"},
            "status": {"phase": "Running", "podIP": "10.0.0.5", **status}}


def test_pod_columns_and_cells(builtin_registry) -> None:
    res = builtin_registry.get("", "v1", "pods")
    statuses = [
        {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T11:58:00Z"}}},
        {"name": "b", "ready": False, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
    ]
    table = tables.to_table(res, [_pod(containerStatuses=statuses)], now=NOW)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert _names(table)[:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert [c["priority"] for c in table["columnDefinitions"]][5:7] == [1, 1]
    assert _names(table)[5:7] == ["IP", "Node"]
    row = table["rows"][0]
    assert row["cells"][:7] == ["p1", "1/2", "CrashLoopBackOff", "3 (2m ago)", "5m", "10.0.0.5", "node1"]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": _pod()["metadata"]}


def test_pod_status_cell_variants(builtin_registry) -> None:
    res = builtin_registry.get("", "v1", "pods")
    plain = tables.to_table(res, [_pod()], now=NOW)["rows"][0]["cells"]
    assert plain[1:4] == ["0/2", "Running", "0"]
    terminating = _pod()
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T11:59:00Z"
    assert tables.to_table(res, [terminating], now=NOW)["rows"][0]["cells"][2] == "Terminating"
    done = _pod(containerStatuses=[{"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}])
    assert tables.to_table(res, [done], now=NOW)["rows"][0]["cells"][2] == "Completed"
    init = _pod(initContainerStatuses=[{"name": "i", "state": {"waiting": {"reason": "PodInitializing"}}}])
    init["spec"]["initContainers"] = [{"name": "i"}]
    assert tables.to_table(res, [init], now=NOW)["rows"][0]["cells"][2] == "Init:0/1"


def test_deployment_columns(builtin_registry) -> None:
    res = builtin_registry.get("apps", "v1", "deployments")
    obj = {"metadata": {"name": "web", "creationTimestamp": "2026-01-01T09:00:00Z"},
           "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}},
           "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    table = tables.to_table(res, [obj], now=NOW)
    assert _names(table) == ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]
    assert table["rows"][0]["cells"] == ["web", "2/3", 3, 2, "3h", "nginx", "nginx:1.25", "app=web"]


def test_statefulset_and_controllerrevision_columns(builtin_registry) -> None:
    res = builtin_registry.get("apps", "v1", "statefulsets")
    obj = {"metadata": {"name": "web", "creationTimestamp": "2026-01-01T09:00:00Z"},
           "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}},
           "status": {"readyReplicas": 2}}
    table = tables.to_table(res, [obj], now=NOW)
    assert _names(table) == ["Name", "Ready", "Age", "Containers", "Images"]
    assert table["rows"][0]["cells"] == ["web", "2/3", "3h", "nginx", "nginx:1.25"]
    res = builtin_registry.get("apps", "v1", "controllerrevisions")
    rev = {"metadata": {"name": "web-7b9c", "creationTimestamp": "2026-01-01T11:00:00Z", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u", "controller": True}]},
        "revision": 2}
    table = tables.to_table(res, [rev, {"metadata": {"name": "loose"}, "revision": 1}], now=NOW)
    assert _names(table) == ["Name", "Controller", "Revision", "Age"]
    assert table["rows"][0]["cells"] == ["web-7b9c", "statefulset.apps/web", 2, "60m"]
    assert table["rows"][1]["cells"][1] == "<none>"


def test_job_columns_as_kubectl_1_32_prints_them(builtin_registry) -> None:
    res = builtin_registry.get("batch", "v1", "jobs")
    container = {"spec": {"containers": [{"name": "pi", "image": "perl:5"}]}}
    done = {"metadata": {"name": "pi", "creationTimestamp": "2026-01-01T09:00:00Z"},
            "spec": {"completions": 3, "parallelism": 1, "template": container,
                     "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}},
            "status": {"succeeded": 3, "startTime": "2026-01-01T09:00:00Z", "completionTime": "2026-01-01T09:02:05Z",
                       "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                      {"type": "Complete", "status": "True"}]}}
    running = {"metadata": {"name": "work", "creationTimestamp": "2026-01-01T11:59:00Z"},
               "spec": {"parallelism": 4, "template": container},
               "status": {"succeeded": 1, "startTime": "2026-01-01T11:59:30Z"}}
    failed = {"metadata": {"name": "bad"}, "spec": {"completions": 1, "template": container},
              "status": {"conditions": [{"type": "FailureTarget", "status": "True"},
                                        {"type": "Failed", "status": "True"}]}}
    suspended = {"metadata": {"name": "later"}, "spec": {"completions": 2, "template": container},
                 "status": {"conditions": [{"type": "Suspended", "status": "True"}]}}
    table = tables.to_table(res, [done, running, failed, suspended], now=NOW)
    assert _names(table) == ["Name", "Status", "Completions", "Duration", "Age", "Containers", "Images", "Selector"]
    assert table["rows"][0]["cells"] == ["pi", "Complete", "3/3", "2m5s", "3h", "pi", "perl:5",
                                         "batch.kubernetes.io/controller-uid=u1"]
    assert table["rows"][1]["cells"][:5] == ["work", "Running", "1/1 of 4", "30s", "60s"]
    assert table["rows"][2]["cells"][1:4] == ["Failed", "0/1", ""]
    assert table["rows"][3]["cells"][1] == "Suspended"


def test_cronjob_columns_as_kubectl_1_32_prints_them(builtin_registry) -> None:
    res = builtin_registry.get("batch", "v1", "cronjobs")
    obj = {"metadata": {"name": "tick", "creationTimestamp": "2026-01-01T09:00:00Z"},
           "spec": {"schedule": "*/5 * * * *", "suspend": False, "jobTemplate": {"spec": {"template": {
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
           "status": {"active": [{"name": "tick-1"}], "lastScheduleTime": "2026-01-01T11:55:00Z"}}
    fresh = {"metadata": {"name": "new"}, "spec": {"schedule": "@daily", "timeZone": "Europe/Paris"}}
    table = tables.to_table(res, [obj, fresh], now=NOW)
    assert _names(table) == ["Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age",
                             "Containers", "Images", "Selector"]
    assert table["rows"][0]["cells"] == ["tick", "*/5 * * * *", "<none>", "False", 1, "5m", "3h", "c", "busybox",
                                         "<none>"]
    assert table["rows"][1]["cells"][1:6] == ["@daily", "Europe/Paris", "<unset>", 0, "<none>"]


def test_custom_resource_columns(reg) -> None:
    res = reg.get("example.com", "v1", "widgets")
    obj = {"metadata": {"name": "w1", "creationTimestamp": "2026-01-01T11:59:30Z"},
           "spec": {"size": 3, "color": "red"}}
    table = tables.to_table(res, [obj, {"metadata": {"name": "w2"}}], now=NOW, include_object="Object")
    assert _names(table) == ["Name", "Size", "Color", "Age"]
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 1, 0]
    assert table["rows"][0]["cells"] == ["w1", 3, "red", "30s"]
    assert table["rows"][1]["cells"] == ["w2", None, None, None]  # missing values print as <none>
    assert table["rows"][0]["object"] is obj


def test_include_none_and_no_headers(reg) -> None:
    res = reg.get("example.com", "v1", "widgets")
    table = tables.to_table(res, [{"metadata": {"name": "w"}}], include_object="None", with_headers=False, now=NOW)
    assert "object" not in table["rows"][0]
    assert table["columnDefinitions"] == []


def test_other_builtins(builtin_registry) -> None:
    cases = {
        ("", "services"): ({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
                                                                "ports": [{"port": 80, "nodePort": 30080}]}},
                           ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"],
                           ["s", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP"]),
        ("", "nodes"): ({"metadata": {"name": "n", "labels": {"node-role.kubernetes.io/control-plane": ""}},
                         "spec": {"unschedulable": True},
                         "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                    "nodeInfo": {"kubeletVersion": "v1.32.0"}}},
                        ["Name", "Status", "Roles", "Age", "Version"],
                        ["n", "Ready,SchedulingDisabled", "control-plane"]),
        ("", "namespaces"): ({"metadata": {"name": "default"}, "status": {"phase": "Active"}},
                             ["Name", "Status", "Age"], ["default", "Active"]),
        ("", "configmaps"): ({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}, ["Name", "Data", "Age"],
                             ["c", 2]),
        ("", "secrets"): ({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "MQ=="}},
                          ["Name", "Type", "Data", "Age"], ["s", "Opaque", 1]),
        ("coordination.k8s.io", "leases"): ({"metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}},
                                            ["Name", "Holder", "Age"], ["l", "me"]),
        ("apps", "replicasets"): ({"metadata": {"name": "rs"}, "spec": {"replicas": 2}, "status": {"replicas": 2}},
                                  ["Name", "Desired", "Current", "Ready", "Age"], ["rs", 2, 2, 0]),
        ("", "events"): ({"metadata": {"name": "e"}, "type": "Normal", "reason": "Scheduled", "message": "ok",
                          "involvedObject": {"kind": "Pod", "name": "p1"}, "lastTimestamp": "2026-01-01T11:59:00Z"},
                         ["Last Seen", "Type", "Reason", "Object", "Message"],
                         ["60s", "Normal", "Scheduled", "pod/p1", "ok"]),
        ("apiextensions.k8s.io", "customresourcedefinitions"): (
            {"metadata": {"name": "widgets.example.com", "creationTimestamp": "2026-01-01T10:00:00Z"}},
            ["Name", "Created At"], ["widgets.example.com", "2026-01-01T10:00:00Z"]),
    }
    for (group, plural), (obj, columns, cells) in cases.items():
        table = tables.to_table(builtin_registry.get(group, "v1", plural), [obj], now=NOW)
        wide = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
        assert wide == columns, plural
        assert table["rows"][0]["cells"][: len(cells)] == cells, plural


def test_human_duration() -> None:
    assert [tables.human_duration(s) for s in (5, 119, 150, 600, 7200, 3600 * 9, 86400 * 3 + 3600, 86400 * 30)] == [
        "5s", "119s", "2m30s", "10m", "120m", "9h", "3d1h", "30d"]


def test_json_path() -> None:
    obj = {"metadata": {"labels": {"a.b/c": "x"}}, "spec": {"items": [{"n": 1}]}}
    assert tables.json_path(obj, ".metadata.labels['a.b/c']") == "x"
    assert tables.json_path(obj, "{.spec.items[0].n}") == 1
    assert tables.json_path(obj, ".spec.missing") is None
    conditions = {"status": {"conditions": [{"type": "Reconciling", "status": "True"},
                                            {"type": "Ready", "status": "False", "message": "m"}]}}
    assert tables.json_path(conditions, '.status.conditions[?(@.type=="Ready")].status') == "False"
    assert tables.json_path(conditions, ".status.conditions[?(@.type=='Ready')].message") == "m"
    assert tables.json_path(conditions, '.status.conditions[?(@.type=="Stalled")].status') is None
    assert tables.json_path({"status": {"conditions": "x"}}, '.status.conditions[?(@.type=="Ready")]') is None


def test_service_account_columns(builtin_registry) -> None:
    res = builtin_registry.get("", "v1", "serviceaccounts")
    obj = {"metadata": {"name": "default", "namespace": "x", "creationTimestamp": "2024-01-01T00:00:00Z"},
           "secrets": [{"name": "a"}]}
    table = tables.to_table(res, [obj], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Secrets", "Age"]
    assert table["rows"][0]["cells"][:2] == ["default", 1]


def test_endpointslice_rows_follow_print_endpoint_slice(builtin_registry) -> None:
    """printEndpointSlice: three ports/addresses then "+ N more...", "<unset>" when there are none."""
    resource = builtin_registry.get("discovery.k8s.io", "v1", "endpointslices")
    full = {"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80}, {"name": "named"}],
            "endpoints": [{"addresses": [f"10.0.0.{i}"]} for i in range(1, 6)]}
    empty = {"metadata": {"name": "web-empty"}, "addressType": "IPv4", "endpoints": []}
    table = tables.to_table(resource, [full, empty])
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "AddressType", "Ports", "Endpoints", "Age"]
    assert table["rows"][0]["cells"][:4] == ["web-abc", "IPv4", "80,named", "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more..."]
    assert table["rows"][1]["cells"][:4] == ["web-empty", "IPv4", "<unset>", "<unset>"]


def test_pdb_rows_follow_print_pod_disruption_budget(builtin_registry) -> None:
    """printPodDisruptionBudget: the set bound as written (int or percent), "N/A" for the other."""
    resource = builtin_registry.get("policy", "v1", "poddisruptionbudgets")
    by_count = {"metadata": {"name": "a"}, "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}}
    by_percent = {"metadata": {"name": "b"}, "spec": {"maxUnavailable": "25%"}}
    table = tables.to_table(resource, [by_count, by_percent])
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"]
    assert table["rows"][0]["cells"][:4] == ["a", "2", "N/A", 1]
    assert table["rows"][1]["cells"][:4] == ["b", "N/A", "25%", 0]


def test_priority_class_rows_follow_print_priority_class(builtin_registry) -> None:
    resource = builtin_registry.get("scheduling.k8s.io", "v1", "priorityclasses")
    table = tables.to_table(resource, [{"metadata": {"name": "high"}, "value": 1000, "globalDefault": True,
                                        "preemptionPolicy": "Never"}, {"metadata": {"name": "bare"}}])
    assert [(c["name"], c["type"]) for c in table["columnDefinitions"]] == [
        ("Name", "string"), ("Value", "integer"), ("Global-Default", "boolean"), ("Age", "string"),
        ("PreemptionPolicy", "string")]
    assert [r["cells"][:3] + r["cells"][4:] for r in table["rows"]] == [["high", 1000, True, "Never"],
                                                                      ["bare", 0, False, ""]]


def test_ingress_rows_follow_print_ingress(builtin_registry) -> None:
    """formatHosts counts rules beyond three once three hosts are taken; TLS adds 443."""
    resource = builtin_registry.get("networking.k8s.io", "v1", "ingresses")
    three_then_bare = {"metadata": {"name": "a"}, "spec": {"rules": [{"host": "x"}, {}, {"host": "y"}, {"host": "z"},
                                                                     {}]}}
    exactly_three = {"metadata": {"name": "b"}, "spec": {"ingressClassName": "", "tls": [{}],
                                                        "rules": [{"host": "x"}, {"host": "y"}, {"host": "z"}]}}
    table = tables.to_table(resource, [three_then_bare, exactly_three])
    assert table["rows"][0]["cells"][:5] == ["a", "<none>", "x,y,z + 2 more...", "", "80"]
    assert table["rows"][1]["cells"][:5] == ["b", "", "x,y,z", "", "80, 443"]


def test_ingress_class_rows_follow_print_ingress_class(builtin_registry) -> None:
    resource = builtin_registry.get("networking.k8s.io", "v1", "ingressclasses")
    core = {"metadata": {"name": "a"}, "spec": {"controller": "x.io/c", "parameters": {"kind": "ConfigMap",
                                                                                    "name": "cm"}}}
    table = tables.to_table(resource, [core, {"metadata": {"name": "b"}, "spec": {"controller": "x.io/c"}}])
    assert [r["cells"][:3] for r in table["rows"]] == [["a", "x.io/c", "ConfigMap/cm"], ["b", "x.io/c", "<none>"]]
