"""`python -m tests.gitops.controller_process KUBECONFIG ARTIFACTS`: the Sync controller alone as a
process, for the test that kills it mid-apply and publishes the trees itself (`reconcile gitops`
runs the source side too, which would fetch instead)."""

from __future__ import annotations

import asyncio
import sys

from reconcile.client import aio
from reconcile.client import config as client_config
from reconcile.gitops import artifacts, controller


async def main(kubeconfig: str, root: str) -> None:
    client = aio.AsyncClient(client_config.load_config(kubeconfig=kubeconfig))
    ctl = controller.SyncController(client, artifacts.ArtifactStore(root), workers=1)
    await ctl.start()
    print("started", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
