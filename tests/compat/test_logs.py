"""`kubectl logs` options against a container that restarted once: --previous, --since,
--since-time, --timestamps, --tail, -l, --all-containers, --prefix."""

from __future__ import annotations

import datetime
import re

import pytest

from tests.compat.conftest import SLEEPER, kubectl
from tests.node import helpers

# First run: prints and fails; the restart (immediate for a first crash) finds the marker and stays.
RESTARTER = ["sh", "-c", "if [ -f /data/ran ]; then echo second; echo second-b; "
             "else touch /data/ran; echo first; exit 1; fi; trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]


@pytest.fixture(scope="module")
def logs_pod(admin, workload, node_agent, module_env) -> str:
    pod = helpers.pod("logs", node_agent.name,
                      helpers.container("main", command=RESTARTER, volumeMounts=[{"name": "d", "mountPath": "/data"}]),
                      helpers.container("side", command=["sh", "-c", "echo side; " + SLEEPER[2]]),
                      volumes=[{"name": "d", "emptyDir": {}}])
    pod["metadata"]["labels"] = {"app": "logs"}
    admin.create("v1", "pods", pod, namespace=workload)
    helpers.wait_pod(admin, workload, "logs", lambda p: helpers.running_ready(p) and helpers.container_status(
        p, "main").get("restartCount", 0) >= 1, what="logs restarted once and Ready")

    def both_printed() -> bool:
        out = kubectl_logs(module_env, workload, "logs", "-c", "main")
        return b"second-b" in out

    from tests import support
    support.wait_for(both_printed, timeout=20, what="the second run's output")
    return workload


def kubectl_logs(env: dict[str, str], ns: str, *args: str) -> bytes:
    result = kubectl(env, "logs", "-n", ns, *args, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_previous_and_current(module_env, logs_pod):
    assert kubectl_logs(module_env, logs_pod, "logs", "-c", "main", "--previous") == b"first\n"
    assert kubectl_logs(module_env, logs_pod, "logs", "-c", "main") == b"second\nsecond-b\n"


def test_previous_of_a_container_that_never_restarted(module_env, logs_pod):
    result = kubectl(module_env, "logs", "-n", logs_pod, "logs", "-c", "side", "--previous", timeout=30)
    assert result.returncode == 1
    assert b'previous terminated container "side" in pod "logs" not found' in result.stderr


def test_tail_and_timestamps(module_env, logs_pod):
    assert kubectl_logs(module_env, logs_pod, "logs", "-c", "main", "--tail=1") == b"second-b\n"
    stamped = kubectl_logs(module_env, logs_pod, "logs", "-c", "main", "--tail=1", "--timestamps").decode()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z second-b\n", stamped), stamped


def test_since_and_since_time(module_env, logs_pod):
    assert kubectl_logs(module_env, logs_pod, "logs", "-c", "main", "--since=1h") == b"second\nsecond-b\n"
    future = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    past = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert kubectl_logs(module_env, logs_pod, "logs", "-c", "main", f"--since-time={future}") == b""
    assert kubectl_logs(module_env, logs_pod, "logs", "-c", "main", f"--since-time={past}") == b"second\nsecond-b\n"


def test_selector_all_containers_prefix(module_env, logs_pod):
    out = kubectl_logs(module_env, logs_pod, "-l", "app=logs", "--all-containers", "--prefix").decode().splitlines()
    assert sorted(out) == ["[pod/logs/main] second", "[pod/logs/main] second-b", "[pod/logs/side] side"]
