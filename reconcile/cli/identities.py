"""What `reconcile up` makes of the cluster PKI: etcd's TLS files, the API server's flags and one
kubeconfig per identity.

    STATE_DIR/
      pki/                         the certificates and keys (reconcile/pki/cluster.py has the layout)
      kubeconfig                   the user's: the admin certificate and the CA embedded (0600)
      kubeconfigs/                 0700, one per component, referencing files under pki/
        controller-manager.kubeconfig   CN=system:kube-controller-manager
        scheduler.kubeconfig            CN=system:kube-scheduler
        coredns.kubeconfig              CN=system:serviceaccount:kube-system:coredns (cluster DNS)
        kube-proxy.kubeconfig           CN=system:kube-proxy (every local node's service proxy)
        gitops-controller.kubeconfig    CN=system:gitops-controller (`reconcile gitops controller`)
        node-NAME.kubeconfig            CN=system:node:NAME, O=system:nodes

Components' kubeconfigs reference the PKI's files by path instead of embedding them, so a renewed
certificate reaches a restarted component without rewriting its kubeconfig, and no copy of a key
is made. The user's kubeconfig embeds its certificate and key (`client-certificate-data`), so it
works when copied elsewhere, as kubeadm's admin.conf does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reconcile.client import config as client_config
from reconcile.etcdserver import embedded
from reconcile.pki import cluster as pki_cluster
from reconcile.pki import files as pki_files

PKI_DIR = "pki"
KUBECONFIGS_DIR = "kubeconfigs"


def pki(state_dir: Path) -> pki_cluster.ClusterPki:
    return pki_cluster.ClusterPki(state_dir / PKI_DIR)


def ensure(state_dir: Path, *, hosts: Sequence[str] = (), nodes: Sequence[str] = ()) -> list[str]:
    """Make or renew the PKI; the names of the certificates written (empty: every one reused)."""
    return pki(state_dir).ensure(hosts=hosts, nodes=nodes)


def etcd_tls(state_dir: Path) -> embedded.MemberTls:
    """The embedded member's TLS: its serving and peer certificates, clients and peers checked
    against the etcd CA (which signs the API server's etcd client certificate and nothing else)."""
    p = pki(state_dir)
    return embedded.MemberTls(trusted_ca=p.etcd_ca.cert, cert=p.etcd_server.cert, key=p.etcd_server.key,
                              peer_trusted_ca=p.etcd_ca.cert, peer_cert=p.etcd_peer.cert, peer_key=p.etcd_peer.key)


def apiserver_etcd_args(state_dir: Path) -> list[str]:
    p = pki(state_dir)
    return ["--etcd-cacert", str(p.etcd_ca.cert), "--etcd-cert", str(p.apiserver_etcd_client.cert),
            "--etcd-key", str(p.apiserver_etcd_client.key)]


def apiserver_tls_args(state_dir: Path) -> list[str]:
    """Serving certificate, client CA and the ServiceAccount token keys (kubeadm's sa.key/sa.pub)."""
    p = pki(state_dir)
    return ["--tls-cert-file", str(p.apiserver.cert), "--tls-private-key-file", str(p.apiserver.key),
            "--client-ca-file", str(p.ca.cert),
            "--service-account-key-file", str(p.sa_pub), "--service-account-signing-key-file", str(p.sa_key),
            "--kubelet-client-certificate", str(p.apiserver_kubelet_client.cert),
            "--kubelet-client-key", str(p.apiserver_kubelet_client.key),
            "--kubelet-certificate-authority", str(p.ca.cert), "--enable-bootstrap-token-auth"]


def controller_manager_args(state_dir: Path) -> list[str]:
    """The cluster CA, published in every namespace as kube-root-ca.crt."""
    return ["--root-ca-file", str(ca_file(state_dir))]


def controller_manager_signing_args(state_dir: Path) -> list[str]:
    """csrsigning signs with the cluster CA (kubeadm gives kube-controller-manager the same files), so
    nodes joining by token get their certificates."""
    p = pki(state_dir)
    return ["--cluster-signing-cert-file", str(p.ca.cert), "--cluster-signing-key-file", str(p.ca.key)]


def node_tls_args(state_dir: Path, node: str) -> list[str]:
    """The local node agent's port: a serving certificate from the cluster CA, and only clients of
    that CA (the API server's kubelet-client certificate), authorized by SubjectAccessReview."""
    p = pki(state_dir)
    return ["--tls-cert-file", str(p.node_serving(node).cert), "--tls-private-key-file",
            str(p.node_serving(node).key), "--client-ca-file", str(p.ca.cert)]


def ca_file(state_dir: Path) -> Path:
    return pki(state_dir).ca.cert


def component_kubeconfig(state_dir: Path, name: str, pair: pki_cluster.Pair, server: str) -> Path:
    """Write (again) the kubeconfig of one component identity; return its path."""
    folder = state_dir / KUBECONFIGS_DIR
    pki_files.ensure_dir(folder)
    path = folder / f"{name}.kubeconfig"
    client_config.write_kubeconfig(path, server, ca_file=ca_file(state_dir), cert_file=pair.cert, key_file=pair.key)
    return path


def controller_manager_kubeconfig(state_dir: Path, server: str) -> Path:
    return component_kubeconfig(state_dir, "controller-manager", pki(state_dir).controller_manager, server)


def scheduler_kubeconfig(state_dir: Path, server: str) -> Path:
    return component_kubeconfig(state_dir, "scheduler", pki(state_dir).scheduler, server)


def dns_kubeconfig(state_dir: Path, server: str) -> Path:
    return component_kubeconfig(state_dir, "coredns", pki(state_dir).coredns, server)


def proxy_kubeconfig(state_dir: Path, server: str) -> Path:
    return component_kubeconfig(state_dir, "kube-proxy", pki(state_dir).kube_proxy, server)


def gitops_kubeconfig(state_dir: Path, server: str) -> Path:
    return component_kubeconfig(state_dir, "gitops-controller", pki(state_dir).gitops_controller, server)


def node_kubeconfig(state_dir: Path, node: str, server: str) -> Path:
    return component_kubeconfig(state_dir, f"node-{node}", pki(state_dir).node(node), server)


def admin_kubeconfig(state_dir: Path, path: Path, server: str) -> None:
    """The user's kubeconfig: kubectl, the official client, kopf and our CLI read it unchanged."""
    p = pki(state_dir)
    admin = p.admin.read()
    client_config.write_kubeconfig(path, server, ca_data=p.ca.cert.read_bytes(), cert_data=admin.cert,
                                   key_data=admin.key)
