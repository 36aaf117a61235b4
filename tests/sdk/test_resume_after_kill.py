"""Crash safety: SIGKILL the operator process in the middle of a handler, start it again; the
handler that had finished is not re-run, the interrupted one is, and the cause completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from reconcile.client import api
from reconcile.engine.sdk import state
from tests import support
from tests.sdk import helpers

PLUGIN = textwrap.dedent(
    """
    import os, pathlib, time
    import reconcile as rc

    MARKS = pathlib.Path(os.environ["MARKS_DIR"])

    @rc.on.create("sdk.reconcile.dev", "v1", "widgets")
    def first(name, **_):
        (MARKS / f"first-{name}-{os.getpid()}").touch()
        return "first done"

    @rc.on.create("sdk.reconcile.dev", "v1", "widgets")
    def second(name, **_):
        (MARKS / f"second-{name}-{os.getpid()}").touch()
        while not (MARKS / "release").exists():  # the plugin's own wait: blocks until the test allows
            time.sleep(0.02)
        return "second done"
    """
)


def _operator(plugin: Path, server: str, namespace: str, marks: Path, log: Path, *,
              standalone: bool = True) -> subprocess.Popen:
    env = dict(os.environ, MARKS_DIR=str(marks), PYTHONUNBUFFERED="1")
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "reconcile", "operator", "run", str(plugin), "-n", namespace,
             *(["--standalone"] if standalone else []), *support.connection(server).component_args()],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )


def test_killed_mid_handler_resumes_without_rerunning_finished(
    api_server: str, sync_client: api.Client, namespace: str, tmp_path: Path
) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(PLUGIN)
    marks = tmp_path / "marks"
    marks.mkdir()
    log = tmp_path / "operator.log"
    first = _operator(plugin, api_server, namespace, marks, log)
    try:
        sync_client.create(helpers.API_VERSION, helpers.PLURAL, helpers.widget("k1"), namespace=namespace)
        helpers.wait_until(lambda: (marks / f"second-k1-{first.pid}").exists(), timeout=30,
                           what=f"second handler started; log: {log}")
        obj = sync_client.get(helpers.API_VERSION, helpers.PLURAL, "k1", namespace=namespace)
        assert '"success":true' in obj["metadata"]["annotations"][state.progress_key("first")]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    second = _operator(plugin, api_server, namespace, marks, log)
    try:
        helpers.wait_until(lambda: (marks / f"second-k1-{second.pid}").exists(), timeout=30,
                           what="the interrupted handler re-run")
        (marks / "release").touch()

        def finished() -> dict | None:
            obj = sync_client.get(helpers.API_VERSION, helpers.PLURAL, "k1", namespace=namespace)
            done = state.last_handled(obj) is not None and obj.get("status", {}).get("second")
            return obj if done else None

        obj = helpers.wait_until(finished, timeout=30, what="the cause completed")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(15)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
    assert sorted(p.name for p in marks.glob("first-*")) == [f"first-k1-{first.pid}"]
    assert obj["status"]["second"] == "second done"
    assert not state.progress_keys(obj)


ELECTED = textwrap.dedent(
    """
    import os, pathlib
    import reconcile as rc

    @rc.on.create("sdk.reconcile.dev", "v1", "widgets")
    def mark(name, **_):
        (pathlib.Path(os.environ["MARKS_DIR"]) / f"{name}-{os.getpid()}").touch()
    """
)


def test_replicas_elect_one_leader_that_runs_the_handlers(
    api_server: str, sync_client: api.Client, namespace: str, tmp_path: Path
) -> None:
    plugin = tmp_path / "elected.py"
    plugin.write_text(ELECTED)
    marks = tmp_path / "marks"
    marks.mkdir()
    replicas = [_operator(plugin, api_server, namespace, marks, tmp_path / f"op{i}.log", standalone=False)
                for i in range(2)]
    try:
        lease = helpers.wait_until(
            lambda: sync_client.get("coordination.k8s.io/v1", "leases", "reconcile-operator-elected",
                                    namespace=namespace), timeout=30, what="a lease held")
        for i in range(5):
            sync_client.create(helpers.API_VERSION, helpers.PLURAL, helpers.widget(f"e{i}"), namespace=namespace)
        helpers.wait_until(lambda: len(list(marks.iterdir())) >= 5, timeout=30, what="all objects handled")
        pids = {p.name.rsplit("-", 1)[1] for p in marks.iterdir()}
        assert len(pids) == 1 and len(list(marks.iterdir())) == 5
        assert lease["spec"]["holderIdentity"]
    finally:
        for proc in replicas:
            proc.send_signal(signal.SIGTERM)
        for proc in replicas:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
