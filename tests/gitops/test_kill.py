"""The Sync controller killed (SIGKILL) mid-apply and started again converges to the revision:
every object of it applied once, what left it pruned, nothing else touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from reconcile.client import aio
from reconcile.gitops import artifacts, controller, plan, syncs
from tests import support
from tests.gitops import syncsupport as s

COUNT = 40


async def _owned(ac: Any, ns: str) -> list[dict]:
    listed = await ac.list("v1", "configmaps", namespace=ns, label_selector=f"{plan.OWNER_NAME}=app")
    return listed["items"]


async def test_killed_mid_apply_and_restarted_converges(ac: Any, api_server: str, tmp_path: Path) -> None:
    store = artifacts.ArtifactStore(tmp_path / "artifacts")
    ns = await s.namespace(ac)
    await ac.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bystander"}},
                    namespace=ns)
    names = [f"cm{i:03d}" for i in range(COUNT)]
    await s.git_repository(ac, ns, "repo", s.publish(store, ns, "repo",
                                                     {f"{n}.yaml": s.configmap(n, {"k": "1"}) for n in names}))
    await s.sync(ac, ns, "app", "repo", interval="10m", retryInterval="1s")
    kubeconfig = support.connection(api_server).kubeconfig()
    log = open(tmp_path / "controller.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "tests.gitops.controller_process", str(kubeconfig),
                                str(store.root)], stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd())
    try:
        async def applying() -> bool:
            assert process.poll() is None, (tmp_path / "controller.log").read_text()[-3000:]
            return len(await _owned(ac, ns)) >= 5

        await support.eventually(applying, timeout=60, interval=0.02, what="the controller applying")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        log.close()
    at_kill = len(await _owned(ac, ns))
    # while it was down, a new revision dropped the first 10 and changed the rest
    kept = names[10:]
    second = s.publish(store, ns, "repo", {f"{n}.yaml": s.configmap(n, {"k": "2"}) for n in kept})
    await s.git_repository(ac, ns, "repo", second)
    client = aio.AsyncClient(support.connection(api_server).client_config())
    ctl = controller.SyncController(client, store)
    await ctl.start()
    try:
        async def converged() -> bool:
            sync = await s.get_sync(ac, ns, "app")
            return syncs.is_ready(sync) and sync["status"].get("lastAppliedRevision") == second.revision

        await support.eventually(converged, timeout=60, interval=0.1, what="converged after the restart")
    finally:
        await ctl.stop()
        await client.close()
    owned = await _owned(ac, ns)
    assert sorted(o["metadata"]["name"] for o in owned) == kept, f"{at_kill} applied when killed"
    assert all(o["data"] == {"k": "2"} for o in owned)
    entries = (await s.get_sync(ac, ns, "app"))["status"]["inventory"]["entries"]
    assert sorted(e["name"] for e in entries) == kept  # once each
    await ac.get("v1", "configmaps", "bystander", namespace=ns)
