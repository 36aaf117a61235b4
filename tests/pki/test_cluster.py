"""reconcile.pki.cluster: the state dir's PKI is made once, reused, renewed and kept private."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest

from reconcile.pki import certs, cluster, files


@pytest.fixture
def pki(tmp_path: Path) -> cluster.ClusterPki:
    return cluster.ClusterPki(tmp_path / "pki")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_ensure_makes_every_certificate_and_the_second_reuses_them(pki: cluster.ClusterPki) -> None:
    written = pki.ensure(nodes=["n1"])
    assert set(written) == {"ca", "etcd/ca", "apiserver", "apiserver-kubelet-client", "admin",
                            "controller-manager", "scheduler", "coredns", "kube-proxy", "gitops-controller", "apiserver-etcd-client",
                            "etcd/server", "etcd/peer", "nodes/n1", "nodes/n1-serving", "sa"}
    before = {p: p.read_bytes() for p in pki.root.rglob("*") if p.is_file()}
    assert pki.ensure(nodes=["n1"]) == []
    assert {p: p.read_bytes() for p in pki.root.rglob("*") if p.is_file()} == before


def test_identities_are_upstreams(pki: cluster.ClusterPki) -> None:
    pki.ensure(nodes=["n1"])

    def identity(pair: cluster.Pair) -> certs.Identity:
        return certs.info(pair.cert.read_bytes()).identity

    assert identity(pki.admin) == certs.Identity("kubernetes-admin", ("system:masters",))
    assert identity(pki.controller_manager) == certs.Identity("system:kube-controller-manager")
    assert identity(pki.scheduler) == certs.Identity("system:kube-scheduler")
    assert identity(pki.coredns) == certs.Identity("system:serviceaccount:kube-system:coredns",
                                                   ("system:serviceaccounts", "system:serviceaccounts:kube-system"))
    assert identity(pki.node("n1")) == certs.Identity("system:node:n1", ("system:nodes",))


def test_two_cas_each_signing_only_its_own(pki: cluster.ClusterPki) -> None:
    pki.ensure()
    ca, etcd_ca = pki.ca.cert.read_bytes(), pki.etcd_ca.cert.read_bytes()
    assert ca != etcd_ca
    for pair in (pki.apiserver, pki.admin, pki.controller_manager, pki.scheduler, pki.apiserver_kubelet_client):
        assert certs.signed_by(pair.cert.read_bytes(), ca) and not certs.signed_by(pair.cert.read_bytes(), etcd_ca)
    for pair in (pki.etcd_server, pki.etcd_peer, pki.apiserver_etcd_client):
        assert certs.signed_by(pair.cert.read_bytes(), etcd_ca) and not certs.signed_by(pair.cert.read_bytes(), ca)


def test_serving_sans_cover_loopback_host_name_and_advertise_addresses(pki: cluster.ClusterPki) -> None:
    pki.ensure(hosts=["192.0.2.10", "api.example.com", "[2001:db8::1]"])
    found = certs.info(pki.apiserver.cert.read_bytes())
    assert {"127.0.0.1", "::1", "192.0.2.10", "2001:db8::1"} <= set(found.ip_addresses)
    assert "10.96.0.1" in found.ip_addresses  # the `kubernetes` Service's cluster IP: pods' in-cluster address
    assert {"localhost", "api.example.com", "kubernetes.default.svc"} <= set(found.dns_names)
    if cluster.host_name():
        assert cluster.host_name() in found.dns_names
    etcd = certs.info(pki.etcd_server.cert.read_bytes())
    assert "192.0.2.10" not in etcd.ip_addresses  # etcd stays on loopback


def test_a_new_advertise_address_reissues_only_the_serving_certificate(pki: cluster.ClusterPki) -> None:
    pki.ensure()
    assert pki.ensure(hosts=["192.0.2.20"]) == ["apiserver"]
    assert "192.0.2.20" in certs.info(pki.apiserver.cert.read_bytes()).ip_addresses


def test_certificates_near_expiry_are_renewed(pki: cluster.ClusterPki) -> None:
    pki.ensure()
    admin = pki.admin.cert.read_bytes()
    inside = certs.now() + datetime.timedelta(days=280)  # 85 of 365 days left: more than a fifth (73)
    assert pki.ensure(now=inside) == []
    near = certs.now() + datetime.timedelta(days=320)  # 45 days left: less than a fifth
    assert set(pki.ensure(now=near)) >= {"admin", "apiserver", "etcd/server"}
    assert pki.admin.cert.read_bytes() != admin
    assert "ca" not in pki.ensure(now=near)  # ten years: the CA is far from its end


def test_a_lost_ca_key_makes_a_new_ca_and_reissues_everything_under_it(pki: cluster.ClusterPki) -> None:
    pki.ensure()
    pki.ca.key.unlink()
    written = pki.ensure()
    assert "ca" in written and {"apiserver", "admin", "scheduler"} <= set(written)
    assert "etcd/ca" not in written and "etcd/server" not in written  # the other CA is untouched
    assert certs.signed_by(pki.admin.cert.read_bytes(), pki.ca.cert.read_bytes())


def test_a_damaged_or_mismatched_pair_is_reissued(pki: cluster.ClusterPki) -> None:
    pki.ensure()
    pki.scheduler.cert.write_bytes(b"garbage")
    pki.controller_manager.key.write_bytes(pki.admin.key.read_bytes())  # a key of another certificate
    assert set(pki.ensure()) == {"scheduler", "controller-manager"}
    assert certs.key_matches(pki.controller_manager.cert.read_bytes(), pki.controller_manager.key.read_bytes())


def test_a_certificate_with_another_identity_is_reissued(pki: cluster.ClusterPki) -> None:
    pki.ensure()
    impostor = certs.issue(pki.ca.read(), common_name="kubernetes-admin", client=True)  # no system:masters
    pki.admin.cert.write_bytes(impostor.cert)
    pki.admin.key.write_bytes(impostor.key)
    assert pki.ensure() == ["admin"]
    assert certs.info(pki.admin.cert.read_bytes()).identity.groups == ("system:masters",)


def test_keys_are_0600_in_0700_directories_even_after_a_careless_copy(pki: cluster.ClusterPki) -> None:
    pki.ensure(nodes=["n1"])
    pki.root.chmod(0o755)
    pki.admin.key.chmod(0o644)
    (pki.root / "etcd").chmod(0o755)
    assert pki.ensure(nodes=["n1"]) == []
    for directory in [pki.root, *(p for p in pki.root.rglob("*") if p.is_dir())]:
        assert _mode(directory) == 0o700, directory
    keys = list(pki.root.rglob("*.key"))
    assert len(keys) == 16 and all(_mode(k) == 0o600 for k in keys)  # 15 certificates and sa.key


def test_a_key_is_never_written_wider_than_0600(tmp_path: Path) -> None:
    import os

    old = os.umask(0)
    try:
        files.write(tmp_path / "d" / "x.key", b"secret", mode=files.KEY_MODE)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "d" / "x.key") == 0o600 and _mode(tmp_path / "d") == 0o700
    assert not list((tmp_path / "d").glob(".*tmp"))


def test_ca_hash_and_csr_signing(pki: cluster.ClusterPki) -> None:
    pki.ensure()
    assert pki.ca_hash() == certs.spki_sha256(pki.ca.cert.read_bytes())
    key = certs.new_key()
    signed = pki.sign_csr(certs.new_csr(key, common_name="system:node:n2", organizations=("system:nodes",)))
    assert certs.signed_by(signed, pki.ca.cert.read_bytes()) and certs.key_matches(signed, key)
    assert certs.info(signed).identity == cluster.node_identity("n2")


def test_split_hosts_dedups_and_separates() -> None:
    assert cluster.split_hosts(["localhost", "LOCALHOST", "127.0.0.1", "::1", "[::1]", "", "a.b"]) == (
        ("localhost", "a.b"), ("127.0.0.1", "::1"))


def test_service_account_key_is_kubeadms_and_kept(pki: cluster.ClusterPki) -> None:
    """sa.key (0600) and sa.pub (its public half): made once, kept across runs, even when the CA is made again."""
    pki.ensure()
    key, pub = pki.sa_key.read_bytes(), pki.sa_pub.read_bytes()
    assert _mode(pki.sa_key) == files.KEY_MODE
    assert certs.signing_public_key(key) == pub and certs.jws_algorithm(key) == "RS256"
    pki.ca.key.unlink()
    assert "sa" not in pki.ensure()
    assert pki.sa_key.read_bytes() == key


def test_service_account_public_key_is_repaired_and_a_broken_key_replaced(pki: cluster.ClusterPki) -> None:
    pki.ensure()
    key = pki.sa_key.read_bytes()
    pki.sa_pub.write_bytes(b"garbage")
    assert pki.ensure() == ["sa"]
    assert pki.sa_pub.read_bytes() == certs.signing_public_key(key)
    pki.sa_key.write_bytes(b"not a key")
    assert pki.ensure() == ["sa"]
    assert certs.signing_public_key(pki.sa_key.read_bytes()) == pki.sa_pub.read_bytes()


def test_a_nodes_serving_certificate_names_it_and_loopback(pki: cluster.ClusterPki) -> None:
    """What the API server verifies the local node agent with (--kubelet-certificate-authority)."""
    pki.ensure(nodes=["n1"])
    found = certs.info(pki.node_serving("n1").cert.read_bytes())
    assert found.server_auth and not found.client_auth and not found.is_ca
    assert "n1" in found.dns_names and {"127.0.0.1", "::1"} <= set(found.ip_addresses)
    assert certs.signed_by(pki.node_serving("n1").cert.read_bytes(), pki.ca.cert.read_bytes())
