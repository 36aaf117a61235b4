"""The secured default for the benchmarks' own API servers: a cluster PKI, the flags `reconcile up`
gives the API server (HTTPS only, the cluster CA as client CA, RBAC), and the admin's credentials
for the benchmark's clients and the components it starts (a kubeconfig with the system:masters
certificate). etcd stays plain in these benchmarks (what they measure is above the API); the cost of
the secured configuration itself is bench/secured.py's.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from reconcile.client import config as client_config
from reconcile.pki import cluster as pki_cluster


class SecuredApi:
    def __init__(self, folder: Path) -> None:
        self.pki = pki_cluster.ClusterPki(folder / "pki")
        self.pki.ensure()
        self.folder = folder

    def apiserver_args(self) -> list[str]:
        return ["--tls-cert-file", str(self.pki.apiserver.cert), "--tls-private-key-file", str(self.pki.apiserver.key),
                "--client-ca-file", str(self.pki.ca.cert), "--authorization-mode", "RBAC"]

    @staticmethod
    def url(host: str, port: int) -> str:
        return f"https://{host}:{port}"

    def ssl_context(self, *, anonymous: bool = False) -> ssl.SSLContext:
        """What httpx takes as `verify`: the cluster CA and (unless anonymous) the admin's client certificate."""
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        if not anonymous:
            context.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        return context

    def client_config(self, server: str) -> client_config.ClientConfig:
        return client_config.ClientConfig(server=server, verify=str(self.pki.ca.cert),
                                          cert=(str(self.pki.admin.cert), str(self.pki.admin.key)))

    def kubeconfig_args(self, server: str) -> list[str]:
        """`--kubeconfig PATH` (the admin's) for a component or operator the benchmark starts."""
        path = self.folder / "admin.kubeconfig"
        client_config.write_kubeconfig(path, server, ca_file=self.pki.ca.cert, cert_file=self.pki.admin.cert,
                                       key_file=self.pki.admin.key)
        path.chmod(0o600)
        return ["--kubeconfig", str(path)]
