"""Encryption at rest: upstream's `EncryptionConfiguration`, applied to values on their way into etcd and back.

Why here, below the watch cache: etcd (and every backup or snapshot of it) holds ciphertext, while
everything above the store (the watch cache, `rest`, watches) sees plaintext, exactly as
kube-apiserver applies its transformers in its etcd3 storage layer. `EtcdStore` calls
`Transformers.to_storage` on every write and `from_storage` on every value it reads (gets, lists,
watch events, deleted values).

The file format is upstream's (`apiserver.config.k8s.io/v1`, `kind: EncryptionConfiguration`): a list
of resource groups, each with providers in order. The first provider of a group encrypts every new
write, with its first key; reads pick the provider and key named by the stored value's prefix
(`k8s:enc:aesgcm:v1:<key name>:`), so a key can be rotated without loss: add a new key first, restart,
rewrite the old objects (`reconcile secrets rotate`), then drop the old key. A value read with anything
but the write key is *stale*; the store says so, and an update that changes nothing still rewrites a
stale value (upstream's GuaranteedUpdate does the same), which is what makes rotation a plain
read-and-replace through the API.

Providers, as far as the `cryptography` package offers them:
- `aesgcm`: AES-GCM, a random 96-bit nonce per write, the object's etcd key (relative to the store's
  prefix) as authenticated data, so a value copied under another key does not decrypt. Random nonces
  bound how many writes one key may take (upstream's advice: rotate well before 2^32; we say 200,000
  writes per key as upstream's documentation does).
- `aescbc`: AES-CBC with PKCS#7 padding and a random IV, as upstream (no integrity protection:
  upstream deprecates it in favour of aesgcm or KMS; it is here to read clusters configured with it).
- `identity`: no encryption. As the first provider it writes plaintext (decryption during migration
  away); later in the list it reads values written before encryption was turned on.
- `secretbox` (XSalsa20-Poly1305) is refused at start: `cryptography` has no XSalsa20-Poly1305, and
  nothing is hand-rolled. `kms` is refused too (it needs a KMS plugin). Use `aesgcm`.

A value that cannot be read back (its key is not configured, the key is wrong, it was altered) raises
`etcd.UnreadableValue` with a reason that names providers and keys, never the value.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reconcile.store import etcd, keys

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
ENCRYPTED_PREFIX = b"k8s:enc:"
AES_KEY_SIZES = (16, 24, 32)
GCM_NONCE_BYTES = 12
CBC_BLOCK_BYTES = 16
PROVIDER_KINDS = ("aesgcm", "aescbc", "secretbox", "identity", "kms")


class ConfigError(ValueError):
    """The configuration file cannot be used; the message says where and why (never a key's secret)."""


# --- providers ---------------------------------------------------------------------------------


class _KeyedProvider:
    """A provider with named keys; the stored prefix `k8s:enc:<kind>:v1:<name>:` names the key used."""

    kind = ""

    def __init__(self, named: list[tuple[str, bytes]]) -> None:
        self.keys = [(f"k8s:enc:{self.kind}:v1:{name}:".encode(), name, self._cipher(secret))
                     for name, secret in named]

    def _cipher(self, secret: bytes) -> Any:
        raise NotImplementedError

    def write(self, context: bytes, plaintext: bytes) -> bytes:
        prefix, _name, cipher = self.keys[0]
        return prefix + self._encrypt(cipher, context, plaintext)

    def match(self, stored: bytes) -> int | None:
        """Which of this provider's keys `stored` says it was written with (its index), if any."""
        for index, (prefix, _name, _cipher) in enumerate(self.keys):
            if stored.startswith(prefix):
                return index
        return None

    def read(self, index: int, context: bytes, stored: bytes) -> bytes:
        prefix, name, cipher = self.keys[index]
        try:
            return self._decrypt(cipher, context, stored[len(prefix):])
        except (InvalidTag, ValueError):
            raise etcd.UnreadableValue(f"{self.kind} key {name!r} cannot decrypt it "
                                       "(a different key of that name, or the value was altered)") from None

    def _encrypt(self, cipher: Any, context: bytes, plaintext: bytes) -> bytes:
        raise NotImplementedError

    def _decrypt(self, cipher: Any, context: bytes, data: bytes) -> bytes:
        raise NotImplementedError


class AesGcmProvider(_KeyedProvider):
    """`aesgcm`: nonce (12 bytes) + ciphertext + tag; the etcd key is the authenticated data."""

    kind = "aesgcm"

    def _cipher(self, secret: bytes) -> AESGCM:
        return AESGCM(secret)

    def _encrypt(self, cipher: AESGCM, context: bytes, plaintext: bytes) -> bytes:
        nonce = os.urandom(GCM_NONCE_BYTES)  # random per write, as upstream (cryptography's documented way)
        return nonce + cipher.encrypt(nonce, plaintext, context)

    def _decrypt(self, cipher: AESGCM, context: bytes, data: bytes) -> bytes:
        if len(data) < GCM_NONCE_BYTES + 16:
            raise ValueError("too short")
        return cipher.decrypt(data[:GCM_NONCE_BYTES], data[GCM_NONCE_BYTES:], context)


class AesCbcProvider(_KeyedProvider):
    """`aescbc`: IV (16 bytes) + AES-CBC ciphertext of the PKCS#7-padded value, as upstream."""

    kind = "aescbc"

    def _cipher(self, secret: bytes) -> algorithms.AES:
        return algorithms.AES(secret)

    def _encrypt(self, cipher: algorithms.AES, context: bytes, plaintext: bytes) -> bytes:
        iv = os.urandom(CBC_BLOCK_BYTES)
        padder = padding.PKCS7(CBC_BLOCK_BYTES * 8).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(cipher, modes.CBC(iv)).encryptor()
        return iv + encryptor.update(padded) + encryptor.finalize()

    def _decrypt(self, cipher: algorithms.AES, context: bytes, data: bytes) -> bytes:
        if len(data) < 2 * CBC_BLOCK_BYTES or len(data) % CBC_BLOCK_BYTES:
            raise ValueError("not whole blocks")
        decryptor = Cipher(cipher, modes.CBC(data[:CBC_BLOCK_BYTES])).decryptor()
        padded = decryptor.update(data[CBC_BLOCK_BYTES:]) + decryptor.finalize()
        unpadder = padding.PKCS7(CBC_BLOCK_BYTES * 8).unpadder()
        return unpadder.update(padded) + unpadder.finalize()  # ValueError on bad padding


class IdentityProvider:
    """`identity`: values as they are."""

    kind = "identity"


Provider = AesGcmProvider | AesCbcProvider | IdentityProvider


class ProviderChain:
    """The providers of one resource group, in the configured order.

    Invariant: `providers` is not empty; `providers[0]` writes, with its first key.
    """

    def __init__(self, providers: list[Provider]) -> None:
        self.providers = providers
        self.writes_plaintext = isinstance(providers[0], IdentityProvider)
        self.reads_plaintext = any(isinstance(p, IdentityProvider) for p in providers)
        self.describe = ", ".join(p.kind for p in providers)

    def to_storage(self, context: bytes, value: bytes) -> bytes:
        first = self.providers[0]
        if isinstance(first, IdentityProvider):
            return value
        return first.write(context, value)

    def from_storage(self, context: bytes, stored: bytes) -> tuple[bytes, bool]:
        """(plaintext, stale: not what a write would store now); `etcd.UnreadableValue` if it cannot be read."""
        if not stored.startswith(ENCRYPTED_PREFIX):
            if not self.reads_plaintext:
                raise etcd.UnreadableValue("it is not encrypted, and the identity provider is not configured "
                                           f"to read plaintext (providers: {self.describe})")
            return stored, not self.writes_plaintext
        for position, provider in enumerate(self.providers):
            if isinstance(provider, IdentityProvider):
                continue
            index = provider.match(stored)
            if index is not None:
                return provider.read(index, context, stored), position != 0 or index != 0
        raise etcd.UnreadableValue(f"it was encrypted with {_written_with(stored)}, which is not configured "
                                   f"(providers: {self.describe})")


def _written_with(stored: bytes) -> str:
    """`aesgcm key 'k1'` from the stored prefix (the part before the ciphertext only)."""
    parts = stored.split(b":", 5)
    if len(parts) >= 5:
        kind, name = parts[2].decode("ascii", "replace"), parts[4].decode("ascii", "replace")
        return f"{kind[:20]} key {name[:64]!r}"
    return "an unknown provider"


_PLAINTEXT_ONLY = ProviderChain([IdentityProvider()])


# --- the store's transformer -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResourcePattern:
    """One entry of a `resources` list: `secrets`, `deployments.apps`, `*.apps`, `*.` (core), `*.*`."""

    text: str
    group: str  # "*" for any group
    plural: str  # "*" for any resource of the group

    def matches(self, group: str, plural: str) -> bool:
        return self.group in ("*", group) and self.plural in ("*", plural)

    def covers(self, other: ResourcePattern) -> bool:
        return self.group in ("*", other.group) and self.plural in ("*", other.plural)


class Transformers:
    """The store's `etcd.ValueTransformer`: each key's resource to its provider chain.

    Resources the configuration does not name are stored as they are, but an encrypted value found
    under one (the configuration no longer covers it) is reported unreadable, never served as bytes.
    """

    def __init__(self, rules: list[tuple[list[ResourcePattern], ProviderChain]]) -> None:
        self.rules = rules
        self._by_resource: dict[tuple[str, str], ProviderChain] = {}

    def chain(self, key: str) -> ProviderChain:
        resource = keys.resource_of(key)
        found = self._by_resource.get(resource)
        if found is None:
            found = _PLAINTEXT_ONLY
            for patterns, chain in self.rules:
                if any(p.matches(*resource) for p in patterns):
                    found = chain
                    break
            if len(self._by_resource) < 10_000:  # bounded: resources come and go with CRDs
                self._by_resource[resource] = found
        return found

    def covers(self, group: str, plural: str) -> bool:
        """Whether writes of this resource are encrypted (the first provider is not identity)."""
        return not self.chain(keys.resource_prefix(group, plural)).writes_plaintext

    def to_storage(self, key: str, value: bytes) -> bytes:
        chain = self.chain(key)
        if chain.writes_plaintext:
            return value
        return chain.to_storage(key.encode(), value)

    def from_storage(self, key: str, stored: bytes) -> tuple[bytes, bool]:
        return self.chain(key).from_storage(key.encode(), stored)


# --- the file ----------------------------------------------------------------------------------


def load(path: str | Path) -> Transformers:
    """Read and check an `EncryptionConfiguration` file; `ConfigError` says what is wrong."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the encryption configuration {path}: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML: {exc}") from None
    try:
        return parse(document)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse(document: Any) -> Transformers:
    """An `EncryptionConfiguration` document (already decoded) to the store's transformer."""
    if not isinstance(document, Mapping):
        raise ConfigError(f"expected a {KIND} object")
    if document.get("kind") != KIND or document.get("apiVersion") != API_VERSION:
        raise ConfigError(f"expected apiVersion {API_VERSION} and kind {KIND}, got "
                          f"{document.get('apiVersion')!r} and {document.get('kind')!r}")
    _no_unknown(document, {"apiVersion", "kind", "resources"}, "")
    entries = document.get("resources")
    if not isinstance(entries, list) or not entries:
        raise ConfigError("resources: at least one entry is required")
    rules: list[tuple[list[ResourcePattern], ProviderChain]] = []
    seen: list[ResourcePattern] = []
    for i, entry in enumerate(entries):
        where = f"resources[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: must be an object with resources and providers")
        _no_unknown(entry, {"resources", "providers"}, where)
        patterns = _patterns(entry.get("resources"), f"{where}.resources", seen)
        providers = _providers(entry.get("providers"), f"{where}.providers")
        rules.append((patterns, ProviderChain(providers)))
    return Transformers(rules)


def _patterns(value: Any, where: str, seen: list[ResourcePattern]) -> list[ResourcePattern]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: at least one resource is required")
    patterns = []
    for j, text in enumerate(value):
        here = f"{where}[{j}]"
        if not isinstance(text, str) or not text:
            raise ConfigError(f"{here}: must be a resource name such as secrets or deployments.apps")
        if text == "*":
            raise ConfigError(f"{here}: '*' is not allowed: use '*.*' for every resource, '*.' for the "
                              "core group or '*.<group>' for one group")
        plural, _, group = text.partition(".")
        if not plural or (plural != "*" and ("*" in plural or "*" in group)):
            raise ConfigError(f"{here}: {text!r} is not a resource name, '*.<group>', '*.' or '*.*'")
        pattern = ResourcePattern(text, group, plural)
        for earlier in seen:
            if earlier.covers(pattern):
                raise ConfigError(f"{here}: {text!r} is already covered by {earlier.text!r} earlier in the file")
        seen.append(pattern)
        patterns.append(pattern)
    return patterns


def _providers(value: Any, where: str) -> list[Provider]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: at least one provider is required")
    providers: list[Provider] = []
    for j, entry in enumerate(value):
        here = f"{where}[{j}]"
        kinds = [k for k in entry if k in PROVIDER_KINDS] if isinstance(entry, Mapping) else []
        if not isinstance(entry, Mapping) or len(kinds) != 1 or len(entry) != 1:
            raise ConfigError(f"{here}: exactly one of {', '.join(PROVIDER_KINDS)} is required")
        kind = kinds[0]
        body = entry[kind] if entry[kind] is not None else {}
        if kind == "secretbox":
            raise ConfigError(f"{here}.secretbox: secretbox (XSalsa20-Poly1305) is not supported: the "
                              "cryptography package has no XSalsa20-Poly1305 and reconcile hand-rolls no "
                              "cryptography; use aesgcm instead (or aescbc to match an older cluster)")
        if kind == "kms":
            raise ConfigError(f"{here}.kms: KMS providers (a KMS plugin over gRPC) are not supported; use aesgcm")
        if kind == "identity":
            if body:
                raise ConfigError(f"{here}.identity: takes no settings ({{}})")
            providers.append(IdentityProvider())
            continue
        named = _keys(body, f"{here}.{kind}")
        providers.append(AesGcmProvider(named) if kind == "aesgcm" else AesCbcProvider(named))
    _no_duplicate_keys(providers, where)
    return providers


def _keys(body: Any, where: str) -> list[tuple[str, bytes]]:
    if not isinstance(body, Mapping):
        raise ConfigError(f"{where}: must be an object with keys")
    _no_unknown(body, {"keys"}, where)
    listed = body.get("keys")
    if not isinstance(listed, list) or not listed:
        raise ConfigError(f"{where}.keys: at least one key is required")
    named: list[tuple[str, bytes]] = []
    for k, key in enumerate(listed):
        here = f"{where}.keys[{k}]"
        if not isinstance(key, Mapping):
            raise ConfigError(f"{here}: must be an object with name and secret")
        _no_unknown(key, {"name", "secret"}, here)
        name, secret = key.get("name"), key.get("secret")
        if not isinstance(name, str) or not name or ":" in name or len(name) > 64:
            raise ConfigError(f"{here}.name: required, at most 64 characters, without ':'")
        if any(name == other for other, _ in named):
            raise ConfigError(f"{here}.name: {name!r} is used twice")
        if not isinstance(secret, str) or not secret:
            raise ConfigError(f"{here}.secret: required (base64 of 16, 24 or 32 random bytes)")
        try:
            raw = binascii.a2b_base64(secret.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError):
            raise ConfigError(f"{here}.secret: not valid base64") from None
        if len(raw) not in AES_KEY_SIZES:
            raise ConfigError(f"{here}.secret: must decode to 16, 24 or 32 bytes, not {len(raw)} "
                              "(make one with: head -c 32 /dev/urandom | base64)")
        named.append((name, raw))
    return named


def _no_duplicate_keys(providers: list[Provider], where: str) -> None:
    """Two providers of one kind with a key of the same name would make a stored prefix ambiguous."""
    seen: set[tuple[str, str]] = set()
    for provider in providers:
        if isinstance(provider, IdentityProvider):
            continue
        for _prefix, name, _cipher in provider.keys:
            if (provider.kind, name) in seen:
                raise ConfigError(f"{where}: {provider.kind} key {name!r} is configured twice")
            seen.add((provider.kind, name))


def _no_unknown(obj: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in obj if k not in known)
    if unknown:
        raise ConfigError(f"{where + ': ' if where else ''}unknown field(s) {', '.join(unknown)}")
