"""Encryption at rest in the store, against a real etcd: what etcd holds, what callers read back,
staleness for rotation, unreadable values, and the EncryptionConfiguration file's checks."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reconcile.store import encryption, etcd
from tests.store import conformance, helpers

CANARY = b"canary-7f3c9e1d-do-not-store"
KEY1 = bytes(range(32))
KEY2 = bytes(range(100, 132))
SECRET_KEY = "core/secrets/ns1/s"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def config(*providers: dict[str, Any], resources: tuple[str, ...] = ("secrets",)) -> dict[str, Any]:
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": [{"resources": list(resources), "providers": list(providers)}]}


def aesgcm(*keys: tuple[str, bytes]) -> dict[str, Any]:
    return {"aesgcm": {"keys": [{"name": name, "secret": b64(raw)} for name, raw in keys]}}


def aescbc(*keys: tuple[str, bytes]) -> dict[str, Any]:
    return {"aescbc": {"keys": [{"name": name, "secret": b64(raw)} for name, raw in keys]}}


IDENTITY = {"identity": {}}


@pytest.fixture
async def raw(etcd_endpoint: str, key_prefix: str) -> AsyncIterator[etcd.EtcdStore]:
    """What etcd itself holds: a store without a transformer on the same prefix."""
    async with etcd.EtcdStore([etcd_endpoint], prefix=key_prefix) as store:
        yield store


async def open_store(endpoint: str, prefix: str, document: dict[str, Any]) -> etcd.EtcdStore:
    store = etcd.EtcdStore([endpoint], prefix=prefix, transformer=encryption.parse(document))
    await store.open()
    return store


@pytest.fixture
async def encrypted(etcd_endpoint: str, key_prefix: str) -> AsyncIterator[etcd.EtcdStore]:
    store = await open_store(etcd_endpoint, key_prefix, config(aesgcm(("key1", KEY1)), IDENTITY))
    try:
        yield store
    finally:
        await store.close()


# --- what etcd holds ---


async def test_aesgcm_ciphertext_in_etcd_plaintext_to_callers(encrypted: etcd.EtcdStore,
                                                              raw: etcd.EtcdStore) -> None:
    value = b'{"data":{"password":"' + CANARY + b'"}}'
    await encrypted.create(SECRET_KEY, value)
    stored, _ = await raw.get(SECRET_KEY)
    assert stored is not None
    assert stored.value.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert CANARY not in stored.value
    # upstream's layout: prefix, 12-byte nonce, ciphertext and tag; the etcd key is the authenticated data
    body = stored.value[len(b"k8s:enc:aesgcm:v1:key1:"):]
    assert AESGCM(KEY1).decrypt(body[:12], body[12:], SECRET_KEY.encode()) == value
    kv, _ = await encrypted.get(SECRET_KEY)
    assert kv is not None and kv.value == value and not kv.stale and not kv.unreadable
    listed = await encrypted.list("core/secrets/")
    assert [item.value for item in listed.items] == [value]


async def test_each_write_gets_a_fresh_nonce(encrypted: etcd.EtcdStore, raw: etcd.EtcdStore) -> None:
    revision = await encrypted.create(SECRET_KEY, CANARY)
    first, _ = await raw.get(SECRET_KEY)
    await encrypted.update(SECRET_KEY, CANARY, expected_revision=revision)
    second, _ = await raw.get(SECRET_KEY)
    assert first is not None and second is not None and first.value != second.value


async def test_resources_not_configured_stay_plaintext(encrypted: etcd.EtcdStore, raw: etcd.EtcdStore) -> None:
    await encrypted.create("core/configmaps/ns1/c", CANARY)
    stored, _ = await raw.get("core/configmaps/ns1/c")
    assert stored is not None and stored.value == CANARY


async def test_watch_events_carry_plaintext(encrypted: etcd.EtcdStore) -> None:
    start = await encrypted.current_revision() + 1
    watcher = helpers.Watcher(encrypted.watch("core/secrets/", start_revision=start))
    try:
        revision = await encrypted.create(SECRET_KEY, b"v1-" + CANARY)
        await encrypted.update(SECRET_KEY, b"v2-" + CANARY, expected_revision=revision)
        await encrypted.delete(SECRET_KEY, expected_revision=None)
        await helpers.eventually(lambda: len(watcher.events) == 3, what="three events")
        put, update, delete = watcher.events
        assert (put.value, update.value, update.prev_value) == (b"v1-" + CANARY, b"v2-" + CANARY, b"v1-" + CANARY)
        assert delete.type == "DELETE" and delete.value == b"v2-" + CANARY
        assert not any(event.unreadable for event in watcher.events)
    finally:
        await watcher.stop()


async def test_aescbc_is_upstreams_layout(etcd_endpoint: str, key_prefix: str, raw: etcd.EtcdStore) -> None:
    store = await open_store(etcd_endpoint, key_prefix, config(aescbc(("cbc", KEY2))))
    try:
        for length in (0, 1, 15, 16, 17, 100):
            value = CANARY[:length] if length <= len(CANARY) else CANARY * 4
            key = f"core/secrets/ns1/cbc-{length}"
            await store.create(key, value)
            stored, _ = await raw.get(key)
            assert stored is not None and stored.value.startswith(b"k8s:enc:aescbc:v1:cbc:")
            body = stored.value[len(b"k8s:enc:aescbc:v1:cbc:"):]
            decryptor = Cipher(algorithms.AES(KEY2), modes.CBC(body[:16])).decryptor()
            unpadder = padding.PKCS7(128).unpadder()
            padded = decryptor.update(body[16:]) + decryptor.finalize()
            assert unpadder.update(padded) + unpadder.finalize() == value
            kv, _ = await store.get(key)
            assert kv is not None and kv.value == value
    finally:
        await store.close()


# --- rotation: staleness ---


async def test_reads_follow_the_prefix_and_say_what_is_stale(etcd_endpoint: str, key_prefix: str,
                                                              raw: etcd.EtcdStore) -> None:
    await raw.create("core/secrets/ns1/plain", b"plain")
    old = await open_store(etcd_endpoint, key_prefix, config(aesgcm(("key1", KEY1)), IDENTITY))
    await old.create("core/secrets/ns1/one", b"under key1")
    await old.close()
    new = await open_store(etcd_endpoint, key_prefix,
                           config(aesgcm(("key2", KEY2), ("key1", KEY1)), aescbc(("cbc", KEY1)), IDENTITY))
    try:
        await new.create("core/secrets/ns1/two", b"under key2")
        found = {kv.key.rsplit("/", 1)[1]: kv for kv in (await new.list("core/secrets/")).items}
        assert {name: (kv.value, kv.stale) for name, kv in found.items()} == {
            "plain": (b"plain", True), "one": (b"under key1", True), "two": (b"under key2", False)}
        # a rewrite of a stale value stores it under the write key
        await new.update("core/secrets/ns1/one", found["one"].value, expected_revision=found["one"].mod_revision)
        stored, _ = await raw.get("core/secrets/ns1/one")
        assert stored is not None and stored.value.startswith(b"k8s:enc:aesgcm:v1:key2:")
        kv, _ = await new.get("core/secrets/ns1/one")
        assert kv is not None and kv.value == b"under key1" and not kv.stale
    finally:
        await new.close()


async def test_identity_first_decrypts_on_rewrite(etcd_endpoint: str, key_prefix: str, raw: etcd.EtcdStore) -> None:
    enc = await open_store(etcd_endpoint, key_prefix, config(aesgcm(("key1", KEY1))))
    await enc.create(SECRET_KEY, CANARY)
    await enc.close()
    back = await open_store(etcd_endpoint, key_prefix, config(IDENTITY, aesgcm(("key1", KEY1))))
    try:
        kv, _ = await back.get(SECRET_KEY)
        assert kv is not None and kv.value == CANARY and kv.stale
        await back.update(SECRET_KEY, kv.value, expected_revision=kv.mod_revision)
        stored, _ = await raw.get(SECRET_KEY)
        assert stored is not None and stored.value == CANARY
    finally:
        await back.close()


# --- unreadable values ---


async def test_missing_key_is_unreadable_not_an_error(etcd_endpoint: str, key_prefix: str,
                                                      encrypted: etcd.EtcdStore) -> None:
    await encrypted.create(SECRET_KEY, CANARY)
    await encrypted.create("core/secrets/ns1/t", b"other")
    other = await open_store(etcd_endpoint, key_prefix, config(aesgcm(("key2", KEY2))))
    try:
        kv, _ = await other.get(SECRET_KEY)
        assert kv is not None and kv.value == b"" and "aesgcm key 'key1'" in kv.unreadable
        assert CANARY.decode() not in kv.unreadable
        listed = await other.list("core/secrets/")
        assert [(item.key, bool(item.unreadable)) for item in listed.items] == [(SECRET_KEY, True),
                                                                               ("core/secrets/ns1/t", True)]
        start = await other.current_revision() + 1
        watcher = helpers.Watcher(other.watch("core/secrets/", start_revision=start))
        try:
            await encrypted.update(SECRET_KEY, CANARY + b"2", expected_revision=None)
            await other.create("core/secrets/ns1/u", b"readable")
            await helpers.eventually(lambda: len(watcher.events) == 2, what="both events")
            assert watcher.error is None
            assert [(e.value, bool(e.unreadable)) for e in watcher.events] == [(b"", True), (b"readable", False)]
        finally:
            await watcher.stop()
    finally:
        await other.close()


async def test_same_name_other_secret_is_unreadable(etcd_endpoint: str, key_prefix: str,
                                                    encrypted: etcd.EtcdStore) -> None:
    await encrypted.create(SECRET_KEY, CANARY)
    wrong = await open_store(etcd_endpoint, key_prefix, config(aesgcm(("key1", KEY2))))
    try:
        kv, _ = await wrong.get(SECRET_KEY)
        assert kv is not None and kv.value == b"" and "cannot decrypt" in kv.unreadable
    finally:
        await wrong.close()


async def test_ciphertext_moved_to_another_key_does_not_decrypt(encrypted: etcd.EtcdStore,
                                                                raw: etcd.EtcdStore) -> None:
    await encrypted.create(SECRET_KEY, CANARY)
    stored, _ = await raw.get(SECRET_KEY)
    assert stored is not None
    await raw.create("core/secrets/other-ns/s", stored.value)
    kv, _ = await encrypted.get("core/secrets/other-ns/s")
    assert kv is not None and kv.unreadable and kv.value == b""


async def test_plaintext_without_identity_is_unreadable(etcd_endpoint: str, key_prefix: str,
                                                        raw: etcd.EtcdStore) -> None:
    await raw.create(SECRET_KEY, CANARY)
    store = await open_store(etcd_endpoint, key_prefix, config(aesgcm(("key1", KEY1))))
    try:
        kv, _ = await store.get(SECRET_KEY)
        assert kv is not None and "identity provider is not configured" in kv.unreadable
    finally:
        await store.close()


async def test_encrypted_value_of_a_resource_no_longer_configured_is_unreadable(
        etcd_endpoint: str, key_prefix: str, encrypted: etcd.EtcdStore) -> None:
    await encrypted.create(SECRET_KEY, CANARY)
    store = await open_store(etcd_endpoint, key_prefix, config(aesgcm(("key1", KEY1)), resources=("configmaps",)))
    try:
        kv, _ = await store.get(SECRET_KEY)
        assert kv is not None and kv.value == b"" and kv.unreadable
    finally:
        await store.close()


# --- the configuration file ---


def test_resource_patterns_pick_the_first_matching_entry() -> None:
    transformers = encryption.parse({
        "apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
        "resources": [
            {"resources": ["secrets", "deployments.apps"], "providers": [aesgcm(("a", KEY1))]},
            {"resources": ["*.example.com"], "providers": [aescbc(("b", KEY1))]},
            {"resources": ["*."], "providers": [IDENTITY]},
            {"resources": ["*.*"], "providers": [aesgcm(("c", KEY2))]},
        ]})
    assert transformers.covers("", "secrets") and transformers.covers("apps", "deployments")
    assert transformers.covers("example.com", "widgets") and transformers.covers("batch", "jobs")
    assert not transformers.covers("", "configmaps")
    assert transformers.to_storage("apps/deployments/ns/d", b"x").startswith(b"k8s:enc:aesgcm:v1:a:")
    assert transformers.to_storage("example.com/widgets/ns/w", b"x").startswith(b"k8s:enc:aescbc:v1:b:")
    assert transformers.to_storage("batch/jobs/ns/j", b"x").startswith(b"k8s:enc:aesgcm:v1:c:")
    assert transformers.to_storage("core/configmaps/ns/c", b"x") == b"x"


@pytest.mark.parametrize(("document", "message"), [
    (config({"secretbox": {"keys": [{"name": "k", "secret": b64(KEY1)}]}}), "use aesgcm"),
    (config({"kms": {"name": "x"}}), "KMS providers"),
    (config(aesgcm(("k", b"short"))), "must decode to 16, 24 or 32 bytes"),
    (config({"aesgcm": {"keys": [{"name": "k", "secret": "not base64!"}]}}), "not valid base64"),
    (config(aesgcm(("k", KEY1), ("k", KEY2))), "'k' is used twice"),
    (config(aesgcm(("k", KEY1)), aesgcm(("k", KEY2))), "configured twice"),
    (config(aesgcm(("a:b", KEY1))), "without ':'"),
    (config(aesgcm(("k", KEY1)), resources=("*",)), "'*' is not allowed"),
    (config(aesgcm(("k", KEY1)), resources=("*.apps", "deployments.apps")), "already covered by '*.apps'"),
    (config({"aesgcm": {"keys": []}}), "at least one key"),
    (config(), "at least one provider"),
    (config({"identity": {}, "aesgcm": {"keys": []}}), "exactly one of"),
    ({"apiVersion": "v1", "kind": "EncryptionConfiguration", "resources": []}, "expected apiVersion"),
    (dict(config(IDENTITY), extra=1), "unknown field(s) extra"),
])
def test_bad_configurations_are_refused(document: dict[str, Any], message: str) -> None:
    with pytest.raises(encryption.ConfigError, match=None) as caught:
        encryption.parse(document)
    assert message in str(caught.value)
    assert b64(KEY1) not in str(caught.value) and b64(KEY2) not in str(caught.value)


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "enc.yaml"
    path.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
                    "- resources: [secrets]\n  providers:\n  - secretbox:\n      keys: [{name: k, secret: "
                    f"{b64(KEY1)}}}]\n")
    with pytest.raises(encryption.ConfigError) as caught:
        encryption.load(path)
    assert str(path) in str(caught.value) and "secretbox" in str(caught.value)
    with pytest.raises(encryption.ConfigError, match="cannot read"):
        encryption.load(tmp_path / "missing.yaml")


# --- every storage guarantee holds through the transformer ---


class TestEncryptedConformance(conformance.StorageConformance):
    """The conformance suite with every value of the suite's resource encrypted on its way to etcd."""

    DOCUMENT = config(aesgcm(("conformance", os.urandom(32))), resources=("things",))

    @pytest.fixture
    async def writer(self, etcd_endpoint: str, key_prefix: str) -> AsyncIterator[etcd.EtcdStore]:
        store = await open_store(etcd_endpoint, key_prefix, self.DOCUMENT)
        try:
            yield store
        finally:
            await store.close()

    @pytest.fixture
    async def storage(self, etcd_endpoint: str, key_prefix: str) -> AsyncIterator[etcd.EtcdStore]:
        store = await open_store(etcd_endpoint, key_prefix, self.DOCUMENT)
        try:
            yield store
        finally:
            await store.close()

    async def test_etcd_holds_only_ciphertext(self, writer: etcd.EtcdStore, raw: etcd.EtcdStore) -> None:
        await writer.create(self.key("secret"), CANARY)
        stored, _ = await raw.get(self.key("secret"))
        assert stored is not None and stored.value.startswith(b"k8s:enc:aesgcm:v1:conformance:")
        assert CANARY not in stored.value
