"""A cluster's PKI on disk, laid out as kubeadm lays out /etc/kubernetes/pki.

    pki/                          0700
      ca.crt ca.key               the cluster CA: signs the API server's serving certificate and
                                  every client certificate the API server accepts (--client-ca-file)
      apiserver.crt/.key          serving: 127.0.0.1, ::1, localhost, the host's name, `kubernetes...`
                                  names, 10.96.0.1 (the `kubernetes` Service) and any advertise address
      apiserver-kubelet-client.*  the API server's client certificate for node agents (exec, logs)
      admin.crt/.key              CN=kubernetes-admin, O=system:masters (the user's kubeconfig)
      controller-manager.*        CN=system:kube-controller-manager
      scheduler.*                 CN=system:kube-scheduler
      coredns.*                   CN=system:serviceaccount:kube-system:coredns (cluster DNS)
      kube-proxy.*                CN=system:kube-proxy (the service proxies)
      gitops-controller.*         CN=system:gitops-controller (`reconcile gitops controller`)
      nodes/NAME.crt/.key         CN=system:node:NAME, O=system:nodes (`up`'s own node; joined nodes get
                                  theirs through a CertificateSigningRequest)
      nodes/NAME-serving.*        the node agent port's serving certificate (NAME, 127.0.0.1, ::1), so the
                                  API server verifies the agent (--kubelet-certificate-authority)
      sa.key sa.pub               ServiceAccount tokens: the API server signs with sa.key and verifies
                                  with sa.pub (kubeadm's names); made once, never renewed (a new key
                                  would invalidate every token in use)
      apiserver-etcd-client.*     signed by the etcd CA: the one etcd client certificate
      etcd/                       0700
        ca.crt ca.key             the etcd CA, apart from the cluster CA (as kubeadm): a cluster
                                  client certificate is no etcd credential, and the reverse
        server.crt/.key           etcd's client port (server and client usage, loopback SANs)
        peer.crt/.key             etcd's peer port (server and client usage)

`ensure` makes what is missing and keeps what is still good: a certificate is reused when it
parses, matches its key, was signed by its (current) CA, names the identity and SANs asked for and
has more than a fifth of its lifetime left; otherwise it is issued again. A CA made again (its key
lost, or it expires) therefore re-issues everything under it. Keys are 0600 in 0700 directories.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconcile.pki import certs, files

RENEW_FRACTION = 0.2  # renew when less than this share of a certificate's lifetime is left

CLUSTER_CA_NAME = "reconcile-ca"
ETCD_CA_NAME = "reconcile-etcd-ca"

ADMIN = certs.Identity("kubernetes-admin", ("system:masters",))
CONTROLLER_MANAGER = certs.Identity("system:kube-controller-manager")
SCHEDULER = certs.Identity("system:kube-scheduler")
# Cluster DNS runs as CoreDNS's ServiceAccount (kube-system/coredns), whose RBAC binding kubeadm makes;
# a certificate for that user (and the ServiceAccount groups) instead of a token: it renews like the rest
COREDNS = certs.Identity("system:serviceaccount:kube-system:coredns",
                         ("system:serviceaccounts", "system:serviceaccounts:kube-system"))
GITOPS_CONTROLLER = certs.Identity("system:gitops-controller")  # `reconcile gitops controller`
KUBE_PROXY = certs.Identity("system:kube-proxy")  # every node's service proxy (bound to system:node-proxier)
APISERVER_KUBELET_CLIENT = certs.Identity("kube-apiserver-kubelet-client", ("system:masters",))
APISERVER_ETCD_CLIENT = certs.Identity("kube-apiserver-etcd-client")
NODES_GROUP = "system:nodes"

# Names and the address a pod reaches the API server by: the `kubernetes` Service in `default`, whose
# cluster IP is the first address of the service range (10.96.0.1 for upstream's and `up`'s default
# 10.96.0.0/12; kubeadm adds the first address of --service-cidr the same way). A server with another
# range passes its first address among `hosts`.
SERVICE_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
DEFAULT_SERVICE_IP = "10.96.0.1"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def node_identity(name: str) -> certs.Identity:
    """What a node agent is: `system:node:NAME` in `system:nodes` (the node authorizer's reading)."""
    return certs.Identity(f"system:node:{name}", (NODES_GROUP,))


@dataclass(frozen=True, slots=True)
class Pair:
    """Where one certificate and its key live."""

    cert: Path
    key: Path

    def read(self) -> certs.Issued:
        return certs.Issued(self.cert.read_bytes(), self.key.read_bytes())


@dataclass(frozen=True, slots=True)
class LeafSpec:
    """A certificate `ensure` keeps: who it names, what it may do, which CA signs it."""

    name: str  # file stem under the PKI root: "apiserver", "etcd/server", "nodes/n1"
    signer: str  # "ca" or "etcd/ca"
    identity: certs.Identity
    server: bool = False
    client: bool = False
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()


def split_hosts(hosts: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS names, IP addresses) of `hosts`, each kept once, in order."""
    dns: list[str] = []
    ips: list[str] = []
    for host in hosts:
        host = host.strip().strip("[]")
        if not host:
            continue
        try:
            value = str(ipaddress.ip_address(host))
        except ValueError:
            if host.lower() not in dns:
                dns.append(host.lower())
            continue
        if value not in ips:
            ips.append(value)
    return tuple(dns), tuple(ips)


def host_name() -> str:
    """This machine's name as a SAN (lower case; empty when it is not a usable DNS name)."""
    name = socket.gethostname().strip().lower()
    return name if name and all(part for part in name.split(".")) else ""


class ClusterPki:
    """The PKI under one root directory (a state dir's `pki/`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def pair(self, name: str) -> Pair:
        return Pair(self.root / f"{name}.crt", self.root / f"{name}.key")

    @property
    def ca(self) -> Pair:
        return self.pair("ca")

    @property
    def etcd_ca(self) -> Pair:
        return self.pair("etcd/ca")

    @property
    def apiserver(self) -> Pair:
        return self.pair("apiserver")

    @property
    def apiserver_etcd_client(self) -> Pair:
        return self.pair("apiserver-etcd-client")

    @property
    def apiserver_kubelet_client(self) -> Pair:
        return self.pair("apiserver-kubelet-client")

    @property
    def admin(self) -> Pair:
        return self.pair("admin")

    @property
    def controller_manager(self) -> Pair:
        return self.pair("controller-manager")

    @property
    def scheduler(self) -> Pair:
        return self.pair("scheduler")

    @property
    def coredns(self) -> Pair:
        return self.pair("coredns")

    @property
    def kube_proxy(self) -> Pair:
        return self.pair("kube-proxy")

    @property
    def gitops_controller(self) -> Pair:
        return self.pair("gitops-controller")

    @property
    def etcd_server(self) -> Pair:
        return self.pair("etcd/server")

    @property
    def etcd_peer(self) -> Pair:
        return self.pair("etcd/peer")

    def node(self, name: str) -> Pair:
        return self.pair(f"nodes/{name}")

    @property
    def sa_key(self) -> Path:
        """The ServiceAccount token signing key (--service-account-signing-key-file)."""
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        """Its public half (--service-account-key-file)."""
        return self.root / "sa.pub"

    def node_serving(self, name: str) -> Pair:
        return self.pair(f"nodes/{name}-serving")

    # --- what exists -------------------------------------------------------------------------

    def specs(self, *, hosts: Sequence[str] = (), nodes: Sequence[str] = ()) -> list[LeafSpec]:
        """Every leaf certificate of the cluster, for the API server's extra `hosts` and `nodes`."""
        dns, ips = split_hosts([*LOOPBACK, host_name(), *SERVICE_NAMES, DEFAULT_SERVICE_IP, *hosts])
        etcd_dns, etcd_ips = split_hosts([*LOOPBACK, host_name()])
        specs = [
            LeafSpec("apiserver", "ca", certs.Identity("kube-apiserver"), server=True, dns_names=dns, ip_addresses=ips),
            LeafSpec("apiserver-kubelet-client", "ca", APISERVER_KUBELET_CLIENT, client=True),
            LeafSpec("admin", "ca", ADMIN, client=True),
            LeafSpec("controller-manager", "ca", CONTROLLER_MANAGER, client=True),
            LeafSpec("scheduler", "ca", SCHEDULER, client=True),
            LeafSpec("coredns", "ca", COREDNS, client=True),
            LeafSpec("kube-proxy", "ca", KUBE_PROXY, client=True),
            LeafSpec("gitops-controller", "ca", GITOPS_CONTROLLER, client=True),
            LeafSpec("apiserver-etcd-client", "etcd/ca", APISERVER_ETCD_CLIENT, client=True),
            LeafSpec("etcd/server", "etcd/ca", certs.Identity(host_name() or "etcd"), server=True, client=True,
                     dns_names=etcd_dns, ip_addresses=etcd_ips),
            LeafSpec("etcd/peer", "etcd/ca", certs.Identity(host_name() or "etcd"), server=True, client=True,
                     dns_names=etcd_dns, ip_addresses=etcd_ips),
        ]
        specs += [LeafSpec(f"nodes/{n}", "ca", node_identity(n), client=True) for n in nodes]
        for n in nodes:
            node_dns, node_ips = split_hosts([n, *LOOPBACK])
            specs.append(LeafSpec(f"nodes/{n}-serving", "ca", certs.Identity(n), server=True,
                                  dns_names=node_dns, ip_addresses=node_ips))
        return specs

    def ensure(self, *, hosts: Sequence[str] = (), nodes: Sequence[str] = (),
               now: datetime.datetime | None = None) -> list[str]:
        """Make or renew what is missing or not good any more; return the names written (empty: all reused)."""
        at = now or certs.now()
        files.ensure_dir(self.root)
        written: list[str] = []
        for name, common_name in (("ca", CLUSTER_CA_NAME), ("etcd/ca", ETCD_CA_NAME)):
            if not self._ca_good(name, at):
                issued = certs.new_ca(common_name)
                self._write(name, issued)
                written.append(name)
        for spec in self.specs(hosts=hosts, nodes=nodes):
            if not self._leaf_good(spec, at):
                ca = self.pair(spec.signer).read()
                issued = certs.issue(ca, common_name=spec.identity.user, organizations=spec.identity.groups,
                                     server=spec.server, client=spec.client, dns_names=spec.dns_names,
                                     ip_addresses=spec.ip_addresses)
                self._write(spec.name, issued)
                written.append(spec.name)
        if self._ensure_signing_key():
            written.append("sa")
        self._restrict()
        return written

    def _ensure_signing_key(self) -> bool:
        """kubeadm's sa.key/sa.pub: kept while the key reads and sa.pub is its public half; else made anew."""
        key, pub = files.read(self.sa_key), files.read(self.sa_pub)
        if key is not None:
            try:
                public = certs.signing_public_key(key)
            except certs.CertificateError:
                public = None
            if public is not None:
                if pub != public:
                    files.write(self.sa_pub, public, mode=files.CERT_MODE)
                    return True
                return False
        key = certs.new_signing_key()
        files.write(self.sa_key, key, mode=files.KEY_MODE)
        files.write(self.sa_pub, certs.signing_public_key(key), mode=files.CERT_MODE)
        return True

    def _write(self, name: str, issued: certs.Issued) -> None:
        pair = self.pair(name)
        files.write(pair.key, issued.key, mode=files.KEY_MODE)  # key first: a torn pair fails key_matches
        files.write(pair.cert, issued.cert, mode=files.CERT_MODE)

    def _restrict(self) -> None:
        """Directories 0700 and keys 0600, whatever a copy or an umask did to them since."""
        for path in [self.root, *(p for p in self.root.rglob("*") if p.is_dir())]:
            path.chmod(files.DIR_MODE)
        for key in self.root.rglob("*.key"):
            files.restrict(key, files.KEY_MODE)

    def _loaded(self, name: str) -> tuple[bytes, certs.CertInfo] | None:
        pair = self.pair(name)
        cert, key = files.read(pair.cert), files.read(pair.key)
        if cert is None or key is None:
            return None
        try:
            return (cert, certs.info(cert)) if certs.key_matches(cert, key) else None
        except certs.CertificateError:
            return None

    def _ca_good(self, name: str, at: datetime.datetime) -> bool:
        loaded = self._loaded(name)
        return loaded is not None and loaded[1].is_ca and certs.signed_by(loaded[0], loaded[0]) \
            and fresh(loaded[1], at)

    def _leaf_good(self, spec: LeafSpec, at: datetime.datetime) -> bool:
        loaded = self._loaded(spec.name)
        signer = files.read(self.pair(spec.signer).cert)
        if loaded is None or signer is None:
            return False
        cert, found = loaded
        return (certs.signed_by(cert, signer) and fresh(found, at) and not found.is_ca
                and found.identity == spec.identity
                and (found.server_auth, found.client_auth) == (spec.server, spec.client)
                and set(found.dns_names) == set(spec.dns_names)
                and set(found.ip_addresses) == set(spec.ip_addresses))

    # --- what others ask of it ----------------------------------------------------------------

    def ca_hash(self) -> str:
        """`sha256:<hex>` of the cluster CA's public key, for `node join --ca-hash`."""
        return certs.spki_sha256(self.ca.cert.read_bytes())

    def sign_csr(self, csr: bytes, *, days: int = certs.LEAF_DAYS) -> bytes:
        """A client certificate for a CSR, signed by the cluster CA (the node bootstrap's signer).
        Whether the identity asked for may be granted is the approver's decision, made before."""
        return certs.sign_csr(self.ca.read(), csr, client=True, days=days)


def fresh(found: certs.CertInfo, at: datetime.datetime) -> bool:
    """Valid at `at`, with more than RENEW_FRACTION of its lifetime left."""
    lifetime = found.not_after - found.not_before
    return found.not_before <= at and found.not_after - at > lifetime * RENEW_FRACTION
