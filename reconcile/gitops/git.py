"""Git sources, fetched and checked out safely: the one seam of `dulwich`.

A GitRepository names a URL and a ref; this module turns them into a commit (fetched shallow
where the ref allows it into a cache per URL), the revision string as Flux writes it
(`main@sha1:<40 hex>`, `v1.2.0@sha1:<40 hex>`, `sha1:<40 hex>` for a pinned commit), and a
checked tree in a staging folder that `ArtifactStore.publish` can rename into place.

Why so careful: a repository is input written by someone else. The tree is read object by
object from the object store (never `git checkout`, so no hooks, filters, LFS smudge, submodule
recursion or repository-configured commands: the cache's config is ours and dulwich runs none of
them), and every entry is checked before anything is written: names that alias `.git` (any case,
NTFS 8.3 and stream spellings, HFS+ ignorable code points), `..`, `/`, `\\`, NUL, case-fold
collisions, duplicated entries, unknown modes, gitlinks, symlinks whose target (followed through
the tree's other links) leaves the tree, and limits on files, bytes, one file's size, path length
and depth. Credentials never reach a message: a URL's `user:password@` is taken out before dulwich
sees the URL, and every error is scrubbed of the secrets it was given. ssh:// runs the system `ssh` through
`StrictSSHVendor` with the fixed arguments of `reconcile.gitops.ssh` (the Secret's identity and
known_hosts only; never core.sshCommand, GIT_SSH or options from the URL).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
import urllib.parse
import zlib
from collections.abc import Iterable
from pathlib import Path

import semantic_version
from dulwich import client as dulwich_client
from dulwich.config import ConfigDict
from dulwich.errors import HangupException
from dulwich.ignore import IgnoreFilter
from dulwich.objects import Commit, Tag, parse_tree
from dulwich.repo import Repo

from reconcile.gitops import ssh

SCHEMES = ("file", "http", "https", "git", "ssh")
# Flux's default exclusions (source-controller's VCS and common CI/binary files); spec.ignore replaces them
DEFAULT_IGNORE = (".git/", ".gitignore", ".gitmodules", ".gitattributes", "*.jpg", "*.jpeg", "*.gif", "*.png",
                  "*.wmv", "*.flv", "*.tar.gz", "*.zip", ".github/", ".circleci/", ".travis.yml",
                  ".gitlab-ci.yml", "appveyor.yml", ".drone.yml", "cloudbuild.yaml", "codeship-services.yml",
                  "codeship-steps.yml", "**/.goreleaser.yml", "**/.sops.yaml", "**/.flux.yaml")
SOURCEIGNORE = ".sourceignore"
DEFAULT_BRANCH = "master"  # Flux's default when spec.ref is absent

_MODE_TREE, _MODE_LINK, _MODE_GITLINK = 0o040000, 0o120000, 0o160000
_REGULAR_MODES = (0o100644, 0o100755, 0o100664)
# code points HFS+ ignores when comparing names (git's is_hfs_dotgit list)
_HFS_IGNORABLE = dict.fromkeys([*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF])


class GitError(Exception):
    """A fetch or checkout failed. The message names the repository (without credentials)."""


class RefNotFound(GitError):
    """The ref (branch, tag, SemVer range, commit) names nothing in the remote repository."""


class UnsafeTree(GitError):
    """The tree holds something that must not be written (the message names the path)."""


class InvalidURL(GitError):
    """spec.url is refused before any transport is opened."""


@dataclasses.dataclass(frozen=True)
class Ref:
    """spec.ref: which commit to fetch. Precedence as Flux: commit, then semver, then tag, then branch."""

    branch: str | None = None
    tag: str | None = None
    semver: str | None = None
    commit: str | None = None

    @classmethod
    def from_spec(cls, spec: dict | None) -> Ref:
        spec = spec if isinstance(spec, dict) else {}
        values = {key: spec.get(key) or None for key in ("branch", "tag", "semver", "commit")}
        for key, value in values.items():
            if value is not None and (not isinstance(value, str) or not value.strip()
                                      or any(ord(c) < 0x20 for c in value)):
                raise GitError(f"spec.ref.{key}: must be a non-empty string")
        if values["commit"] is not None and not re.fullmatch(r"[0-9a-f]{40}", values["commit"]):
            raise GitError("spec.ref.commit: must be a full 40-character lower-case hex SHA-1")
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class Credentials:
    """From spec.secretRef's Secret: `username`+`password` (basic auth) or `bearerToken` over HTTP(S);
    `identity` (an SSH private key), `known_hosts` (the server's host keys) and, for an encrypted
    identity, `password` (its passphrase) over ssh://."""

    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    bearer_token: str | None = dataclasses.field(default=None, repr=False)
    identity: str | None = dataclasses.field(default=None, repr=False)
    known_hosts: str | None = None

    def secrets(self) -> list[str]:
        """What must never reach a message: passwords, tokens, the private key (and each of its lines)."""
        key_lines = [line.strip() for line in (self.identity or "").splitlines() if len(line.strip()) >= 16]
        return [s for s in (self.password, self.bearer_token, self.identity, *key_lines) if s]


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what one fetch and checkout may cost. Defaults suit manifests, not binaries."""

    max_fetch_bytes: int = 256 * 1024 * 1024  # pack bytes received in one fetch
    max_total_bytes: int = 256 * 1024 * 1024  # uncompressed bytes of the checked-out tree
    max_file_bytes: int = 16 * 1024 * 1024
    max_files: int = 50_000  # files, links and folders
    max_path_bytes: int = 1024
    max_depth: int = 64


@dataclasses.dataclass(frozen=True)
class Fetched:
    """A fetched commit: the revision string Flux would write, and where its objects are."""

    commit: str
    revision: str
    cache_dir: Path
    url: str  # redacted


def redact(url: str) -> str:
    """`url` without userinfo, query or fragment (where tokens hide); safe for status and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_url(url: object) -> tuple[str, str | None, str | None]:
    """(location without credentials, username, password) of a URL spec.url may hold, or InvalidURL.

    Refused: anything but file://, http(s)://, git://, ssh:// or an absolute local path; git's
    `transport::address` syntax (`ext::sh -c ...` runs a command in real git); scp-like
    `user@host:path` (as Flux: write ssh://user@host/path); a leading `-` (read as an option by a
    command line); whitespace and control characters; over ssh://, a host or user (after
    percent-decoding) that `ssh` could read as an option, and a password.
    """
    if not isinstance(url, str) or not url:
        raise InvalidURL("spec.url: Required value")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise InvalidURL(f"spec.url: {redact(url)!r} contains whitespace or control characters")
    if url.startswith("-"):
        raise InvalidURL("spec.url: must not start with '-'")
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*::", url):
        raise InvalidURL(f"spec.url: the transport::address syntax ({url.split('::')[0]}::) is not supported")
    if url.startswith("/"):
        if "/../" in url + "/" or "/./" in url + "/":
            raise InvalidURL("spec.url: a local path must be normalised (no . or .. components)")
        return url, None, None
    if re.match(r"^[^/:@]+@[^/:]+:", url) and "://" not in url:
        raise InvalidURL(f"spec.url: the scp-like address {redact(url)!r} is not supported: write "
                         "ssh://user@host/path (a path relative to the home folder: ssh://user@host/~/path)")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = scheme or "a relative path"
        raise InvalidURL(f"spec.url: {shown} is not supported (supported: {', '.join(s + '://' for s in SCHEMES)}, "
                         "or an absolute path)")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise InvalidURL("spec.url: a file:// URL must name an absolute local path")
        return parse_url(urllib.parse.unquote(parts.path))
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidURL(f"spec.url: {redact(url)!r} has an invalid port") from None
    if not host or host.startswith("-"):
        raise InvalidURL(f"spec.url: {redact(url)!r} has no valid host")
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    location = urllib.parse.urlunsplit((scheme, netloc, parts.path, parts.query, ""))
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    if scheme == "ssh":
        try:
            ssh.check_target(host, username)
        except ValueError as exc:
            raise InvalidURL(f"spec.url: {redact(url)!r}: {exc}") from None
        if password is not None:
            raise InvalidURL(f"spec.url: {redact(url)!r}: a password in an ssh:// URL is not supported "
                             "(spec.secretRef names a Secret with identity and known_hosts)")
    return location, username, password


def check_constraint(constraint: str) -> semantic_version.NpmSpec:
    """A SemVer range as Flux accepts it (`>=1.0.0 <2.0.0`, `^1.2`, `~1.2.3`, `1.x`, `a || b`)."""
    try:
        return semantic_version.NpmSpec(constraint.strip())
    except ValueError as exc:
        raise GitError(f"spec.ref.semver: invalid SemVer range {constraint!r}: {exc}") from None


def _version(tag: str) -> semantic_version.Version | None:
    try:
        return semantic_version.Version(tag.removeprefix("v"))
    except ValueError:
        return None


def _scrub(message: str, secrets: Iterable[str | None], url: str) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message.replace(url, redact(url))


def cache_dir_for(cache_root: Path, location: str) -> Path:
    """The cache of one URL (credentials are never part of `location`)."""
    return Path(cache_root) / hashlib.sha256(location.encode()).hexdigest()[:32]


MAX_CACHED_PACKS = 16  # each fetch adds a pack; past this the cache starts again (shallow: cheap)


def _open_cache(path: Path) -> Repo:
    """The cache's bare repository, new when absent or when fetches have piled up too many packs."""
    packs = path / "objects" / "pack"
    if packs.is_dir() and len(list(packs.glob("*.pack"))) > MAX_CACHED_PACKS:
        shutil.rmtree(path, ignore_errors=True)
    if (path / "objects").is_dir():
        return Repo(str(path))
    path.mkdir(parents=True, exist_ok=True)
    return Repo.init_bare(str(path))


class _BoundedWriter:
    """The pack's bytes, refused past the fetch limit (a repository cannot fill the disk)."""

    def __init__(self, write, limit: int) -> None:
        self._write, self._limit, self.count = write, limit, 0

    def __call__(self, data: bytes) -> int | None:
        self.count += len(data)
        if self.count > self._limit:
            raise GitError(f"the fetched pack is larger than the limit of {self._limit} bytes")
        return self._write(data)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


class _BearerScoped:
    """dulwich's HTTP pool manager, adding `Authorization: Bearer` only to requests for one origin.

    A server may redirect the fetch to another origin, and dulwich then sends the rest of the fetch
    there: a header set for every request would follow (http.extraHeader does); this one does not.
    """

    def __init__(self, pool: object, url: str, token: str) -> None:
        self._pool, self._origin, self._value = pool, _origin(url), f"Bearer {token}"

    def __getattr__(self, name: str) -> object:
        return getattr(self._pool, name)

    def request(self, method: str, url: str, *args: object, **kwargs: object) -> object:
        headers = {k: v for k, v in dict(kwargs.pop("headers", None) or {}).items() if k.lower() != "authorization"}
        if _origin(url) == self._origin:
            headers["Authorization"] = self._value
        return self._pool.request(method, url, *args, headers=headers, **kwargs)


class StrictSSHVendor(dulwich_client.SSHVendor):
    """dulwich's SSH vendor for ssh:// sources: the system `ssh` with `ssh.command`'s fixed arguments.

    dulwich hands a vendor the `ssh_command` it found (core.sshCommand of a config, or what its
    porcelain read from GIT_SSH/GIT_SSH_COMMAND): this one never uses it, nor `key_filename`; the
    key and known_hosts are always the Secret's, from `material`.
    """

    def __init__(self, material: ssh.KeyMaterial, *, connect_timeout: float | None = None) -> None:
        self.material = material
        self.connect_timeout = connect_timeout
        self.binary = ssh.find_ssh()

    def run_command(self, host: str, command: bytes, username: str | None = None, port: int | None = None,
                    password: str | None = None, key_filename: str | None = None, ssh_command: str | None = None,
                    protocol_version: int | None = None) -> dulwich_client.SubprocessWrapper:
        if password is not None:
            raise GitError("a password over ssh:// is not supported (use an identity)")
        try:
            argv = ssh.command(self.binary, self.material, host, command, port=port, username=username,
                               protocol_version=protocol_version, connect_timeout=self.connect_timeout)
        except ValueError as exc:
            raise InvalidURL(f"spec.url: {exc}") from None
        process = subprocess.Popen(argv, bufsize=0, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=ssh.environment(), close_fds=True)
        return dulwich_client.SubprocessWrapper(process)


def _ssh_client(location: str, username: str | None, credentials: Credentials, config: ConfigDict,
                timeout: float | None, secrets: list[str | None]
                ) -> tuple[dulwich_client.SSHGitClient, str, ssh.KeyMaterial]:
    """dulwich's SSH client for `location`, with the Secret's key material written for this fetch.

    A passphrase-protected identity is decrypted with `credentials.password` first (in memory); the
    decrypted key's lines join `secrets`, so no message can show them either."""
    if not credentials.identity:
        raise GitError("an ssh:// URL needs spec.secretRef naming a Secret with the keys identity and known_hosts")
    if not credentials.known_hosts:
        raise GitError("an ssh:// URL needs the key known_hosts in the Secret (host keys are never trusted "
                       "on first use)")
    try:
        identity = ssh.decrypt_identity(credentials.identity, credentials.password)
    except ssh.IdentityError as exc:
        raise GitError(f"the Secret's key material: {exc}") from None
    if identity != credentials.identity:
        secrets.extend(Credentials(identity=identity).secrets())
    parts = urllib.parse.urlsplit(location)
    host = parts.hostname or ""
    material = ssh.KeyMaterial(identity, credentials.known_hosts)
    try:
        vendor = StrictSSHVendor(material, connect_timeout=timeout)
        # ssh_command given (never None), so dulwich does not look up core.sshCommand in any config
        client = dulwich_client.SSHGitClient(host, port=parts.port, username=username or ssh.DEFAULT_USER,
                                             vendor=vendor, config=config, ssh_command="ssh", quiet=True)
    except BaseException:
        material.close()
        raise
    return client, parts.path, material


def fetch(url: str, ref: Ref, cache_root: Path, *, credentials: Credentials | None = None,
          limits: Limits = Limits(), timeout: float | None = 60.0, allow_local: bool = False) -> Fetched:
    """Fetch the commit `ref` names from `url` into the URL's cache; shallow unless a commit is pinned.

    `allow_local` admits file:// URLs and local paths: off unless the operator asks, since with it
    anyone who may create a GitRepository could read any repository on the controller's host.
    """
    location, url_user, url_password = parse_url(url)
    if location.startswith("/") and not allow_local:
        raise InvalidURL("spec.url: file:// URLs and local paths are disabled on this controller "
                         "(only http://, https://, git:// and ssh:// are served)")
    credentials = credentials or Credentials()
    username = credentials.username or url_user
    password = credentials.password or url_password
    secrets = [password, url_password, *credentials.secrets()]
    shown = redact(url)
    config = ConfigDict()  # ours, empty: no ~/.gitconfig, no repository config, no insteadOf rewriting
    if timeout:
        config.set((b"http",), b"timeout", str(max(1, int(timeout))).encode())
    cache = cache_dir_for(cache_root, location)
    resolved: dict[str, object] = {}

    def determine_wants(refs: dict, depth: int | None = None) -> list[bytes]:
        resolved["refs"] = dict(refs)
        try:
            name, sha = _choose(ref, refs)
        except GitError as exc:
            resolved["error"] = exc
            return []
        resolved.update(name=name, sha=sha)
        if ref.commit:  # servers refuse unadvertised wants: fetch the branch (or every branch), unshallow
            wanted = [refs[f"refs/heads/{ref.branch}".encode()]] if ref.branch else \
                [v for k, v in refs.items() if v and k.startswith(b"refs/heads/")]
        else:
            wanted = [sha]
        return [w for w in wanted if w not in target.object_store]

    material: ssh.KeyMaterial | None = None
    try:
        kwargs: dict[str, object] = {}
        if location.startswith("http"):
            kwargs.update(username=username, password=password)  # dulwich scopes these to the URL's origin
            if credentials.bearer_token:
                kwargs["pool_manager"] = _BearerScoped(dulwich_client.default_urllib3_manager(config),
                                                       location, credentials.bearer_token)
        if location.startswith("ssh://"):
            client, path, material = _ssh_client(location, url_user or credentials.username, credentials, config,
                                                 timeout, secrets)
        else:
            client, path = dulwich_client.get_transport_and_path(location, config=config, quiet=True, **kwargs)
        target = _open_cache(cache)
        with target:
            # a thin pack (its deltas may name bases we hold) is spooled, bounded, then completed
            with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024, prefix="incoming-",
                                               dir=cache / "objects") as spool:
                writer = _BoundedWriter(spool.write, limits.max_fetch_bytes)
                result = client.fetch_pack(path, determine_wants, target.get_graph_walker(), writer,
                                           depth=None if ref.commit else 1)
                if spool.tell():
                    spool.seek(0)
                    target.object_store.add_thin_pack(spool.read, None)
            target.update_shallow(result.new_shallow, result.new_unshallow)
            if "error" in resolved:
                raise resolved["error"]
            if "sha" not in resolved:
                raise GitError("the remote sent no references")
            sha = _peel(target, resolved["sha"], resolved["name"])
    except GitError as exc:
        raise type(exc)(f"{shown}: {_scrub(str(exc), secrets, location)}") from None
    except HangupException as exc:  # over ssh://: what `ssh` wrote to stderr (or the server's hangup)
        detail = _scrub(str(exc), secrets, location)
        if material is not None:
            parts = urllib.parse.urlsplit(location)
            detail = material.hide_paths(ssh.explain(detail, parts.hostname or "", parts.port))
        raise GitError(f"{shown}: fetch failed: {detail}") from None
    except Exception as exc:  # dulwich's, urllib3's and the OS's errors: one clear, scrubbed message
        detail = _scrub(f"{type(exc).__name__}: {exc}", secrets, location)
        if material is not None:
            detail = material.hide_paths(detail)
        raise GitError(f"{shown}: fetch failed: {detail}") from None
    finally:
        if material is not None:
            material.close()  # the key and known_hosts live exactly as long as the fetch
    name = resolved["name"]
    if ref.commit:
        revision = f"{ref.branch}@sha1:{sha}" if ref.branch else f"sha1:{sha}"
    else:
        revision = f"{name}@sha1:{sha}"
    return Fetched(sha, revision, cache, shown)


def _choose(ref: Ref, refs: dict) -> tuple[str, bytes]:
    """(the short ref name, the sha to want) for `ref` among the remote's `refs`."""
    refs = {name: sha for name, sha in refs.items() if sha}
    if ref.commit:
        if ref.branch and f"refs/heads/{ref.branch}".encode() not in refs:
            raise RefNotFound(f"couldn't find remote ref \"refs/heads/{ref.branch}\"")
        return ref.commit, ref.commit.encode()
    if ref.semver:
        spec = check_constraint(ref.semver)
        candidates = []
        for name in refs:
            if name.startswith(b"refs/tags/") and not name.endswith(b"^{}"):
                tag = name[len(b"refs/tags/"):].decode(errors="replace")
                version = _version(tag)
                if version is not None and version in spec:
                    candidates.append((version, tag))
        if not candidates:
            raise RefNotFound(f"no tag matches the SemVer range {ref.semver!r}")
        tag = max(candidates)[1]
        return tag, refs[f"refs/tags/{tag}".encode()]
    if ref.tag:
        sha = refs.get(f"refs/tags/{ref.tag}".encode())
        if sha is None:
            raise RefNotFound(f"couldn't find remote ref \"refs/tags/{ref.tag}\"")
        return ref.tag, sha
    branch = ref.branch or DEFAULT_BRANCH
    sha = refs.get(f"refs/heads/{branch}".encode())
    if sha is None:
        raise RefNotFound(f"couldn't find remote ref \"refs/heads/{branch}\"")
    return branch, sha


def _peel(repo: Repo, sha: bytes, name: str) -> str:
    """The commit `sha` is or (through annotated tags) points to."""
    for _ in range(10):
        try:
            obj = repo.object_store[sha]
        except KeyError:
            raise RefNotFound(f"{name}: object {sha.decode()} not found in the repository") from None
        if isinstance(obj, Commit):
            return obj.id.decode()
        if isinstance(obj, Tag):
            sha = obj.object[1]
            continue
        raise GitError(f"{name}: points to a {obj.type_name.decode()}, not a commit")
    raise GitError(f"{name}: a chain of more than 10 tags")


# --- checkout -------------------------------------------------------------------------------------


def _dotgit_alias(name: str) -> bool:
    """Whether a file system could take `name` for `.git` (git's is_ntfs_dotgit / is_hfs_dotgit)."""
    folded = unicodedata.normalize("NFC", name.translate(_HFS_IGNORABLE)).casefold()
    folded = folded.split(":", 1)[0].rstrip(" .")
    return folded in (".git", "git~1")


def check_name(name: bytes, where: str) -> str:
    """One tree entry's name, decoded, or UnsafeTree naming `where`."""
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeTree(f"{where}{name!r}: the name is not UTF-8") from None
    shown = where + text
    if text in ("", ".", ".."):
        raise UnsafeTree(f"{shown!r}: the name {text!r} is not allowed in a tree")
    if "/" in text or "\\" in text:
        raise UnsafeTree(f"{shown!r}: a name must not contain '/' or '\\'")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise UnsafeTree(f"{shown!r}: a name must not contain control characters")
    if _dotgit_alias(text):
        raise UnsafeTree(f"{shown!r}: the name is (or a file system may read it as) .git")
    return text


@dataclasses.dataclass
class _Walk:
    """The checks' running totals, and what the write phase will write (nothing is written before)."""

    limits: Limits
    ignore: IgnoreFilter
    sizes: _Sizes
    files: int = 0
    total: int = 0
    dirs: list[str] = dataclasses.field(default_factory=list)
    blobs: list[tuple[str, bytes, int]] = dataclasses.field(default_factory=list)  # path, sha, mode
    links: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # path, target


def _ignore_filter(patterns: Iterable[str]) -> IgnoreFilter:
    return IgnoreFilter([p.encode() for p in patterns if p.strip() and not p.lstrip().startswith("#")])


def checkout(fetched: Fetched, dest: Path, *, ignore: str | None = None, limits: Limits = Limits()) -> str:
    """Write the checked tree of `fetched.commit` into the empty folder `dest`; return its digest.

    `ignore` is spec.ignore (gitignore lines); without it Flux's default exclusions apply. A root
    `.sourceignore` adds its lines. Nothing is left in `dest` when a check fails.
    """
    dest = Path(dest)
    try:
        with Repo(str(fetched.cache_dir)) as repo:
            commit = repo.object_store[fetched.commit.encode()]
            if not isinstance(commit, Commit):
                raise GitError(f"{fetched.commit}: not a commit")
            patterns = list(DEFAULT_IGNORE) if ignore is None else ignore.splitlines()
            sizes = _Sizes(repo)
            try:
                for name, mode, sha in _entries(repo, commit.tree, ""):
                    if name == SOURCEIGNORE.encode() and mode in _REGULAR_MODES:
                        text = _read_blob(repo, sha, SOURCEIGNORE, limits, sizes).decode(errors="replace")
                        patterns += text.splitlines()
                walk = _Walk(limits, _ignore_filter(patterns), sizes)
                _check_tree(repo, commit.tree, "", 0, walk)
                _write(repo, dest, walk)
            finally:
                sizes.close()
            return tree_digest(dest)
    except GitError as exc:
        _empty(dest)
        raise type(exc)(f"{fetched.url}: {exc}") from None
    except (OSError, KeyError, ValueError) as exc:  # the OS's, and dulwich's on a malformed object
        _empty(dest)
        raise GitError(f"{fetched.url}: checkout failed: {type(exc).__name__}: {exc}") from None


def _empty(dest: Path) -> None:
    for entry in dest.iterdir() if dest.is_dir() else ():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _entries(repo: Repo, tree_sha: bytes, where: str) -> list[tuple[bytes, int, bytes]]:
    try:
        type_num, raw = repo.object_store.get_raw(tree_sha)
    except KeyError:
        raise GitError(f"{where or '/'}: tree {tree_sha.decode()} is missing from the fetched objects") from None
    if type_num != 2:
        raise UnsafeTree(f"{where or '/'}: expected a tree object")
    try:
        return list(parse_tree(raw, repo.object_format.oid_length))
    except Exception as exc:
        raise UnsafeTree(f"{where or '/'}: malformed tree: {exc}") from None


class _Sizes:
    """Declared object sizes, by id, for one checkout (each pack file opened once)."""

    def __init__(self, repo: Repo) -> None:
        self._repo = repo
        self._known: dict[bytes, int | None] = {}
        self._packs = list(repo.object_store.packs)
        self._files: dict[str, object] = {}

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()  # type: ignore[attr-defined]
        self._files.clear()

    def get(self, sha: bytes) -> int | None:
        if sha not in self._known:
            self._known[sha] = self._read(sha)
        return self._known[sha]

    def _read(self, sha: bytes) -> int | None:
        """The size an object's header declares, read without inflating the object (None: unknown)."""
        loose = os.path.join(self._repo.object_store.path, sha[:2].decode(), sha[2:].decode())
        try:
            with open(loose, "rb") as handle:
                head = zlib.decompressobj().decompress(handle.read(4096), 64)
            return int(head.split(b"\0", 1)[0].split(b" ", 1)[1])
        except FileNotFoundError:
            pass
        except (ValueError, IndexError, zlib.error):
            return None
        for pack in self._packs:
            try:
                offset = pack.index.object_offset(sha)
            except KeyError:
                continue
            path = os.fspath(pack.data.path)
            handle = self._files.get(path)
            if handle is None:
                handle = self._files[path] = open(path, "rb")  # noqa: SIM115 (closed by close())
            handle.seek(offset)  # type: ignore[attr-defined]
            try:
                return _pack_object_size(handle.read(8192))  # type: ignore[attr-defined]
            except (IndexError, zlib.error):
                return None  # unreadable here: the full read (bounded by the fetch limit) decides
        return None


def _pack_object_size(data: bytes) -> int | None:
    """The size of the object (after deltas) that a pack entry starting with `data` declares."""
    byte, pos = data[0], 1
    type_num, size, shift = (byte >> 4) & 7, byte & 15, 4
    while byte & 0x80:
        byte = data[pos]
        pos += 1
        size |= (byte & 0x7F) << shift
        shift += 7
    if type_num in (1, 2, 3, 4):
        return size
    if type_num == 6:  # OFS_DELTA: skip the base offset
        while data[pos] & 0x80:
            pos += 1
        pos += 1
    elif type_num == 7:  # REF_DELTA: skip the base id
        pos += 20
    else:
        return None
    delta = zlib.decompressobj().decompress(data[pos:], 32)
    values, index = [], 0
    for _ in range(2):  # base size, then result size
        value, shift = 0, 0
        while index < len(delta):
            byte = delta[index]
            index += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        values.append(value)
    return values[1]


def _read_blob(repo: Repo, sha: bytes, where: str, limits: Limits, sizes: _Sizes) -> bytes:
    declared = sizes.get(sha)
    if declared is not None and declared > limits.max_file_bytes:
        raise UnsafeTree(f"{where!r}: {declared} bytes, larger than the limit of {limits.max_file_bytes} bytes "
                         "for one file")
    try:
        type_num, data = repo.object_store.get_raw(sha)
    except KeyError:
        raise GitError(f"{where!r}: blob {sha.decode()} is missing from the fetched objects") from None
    if type_num != 3:
        raise UnsafeTree(f"{where!r}: expected a blob object")
    if len(data) > limits.max_file_bytes:
        raise UnsafeTree(f"{where!r}: {len(data)} bytes, larger than the limit of {limits.max_file_bytes} bytes "
                         "for one file")
    return data


def _check_tree(repo: Repo, tree_sha: bytes, where: str, depth: int, walk: _Walk) -> None:
    """Check every entry below `tree_sha` and note what to write; reads only link targets."""
    limits = walk.limits
    if depth > limits.max_depth:
        raise UnsafeTree(f"{where!r}: nested deeper than the limit of {limits.max_depth} folders")
    raw_entries = _entries(repo, tree_sha, where)
    walk.files += len(raw_entries)  # every entry counts, ignored or not: each costs a check
    if walk.files > limits.max_files:
        raise UnsafeTree(f"{where or '/'!r}: more than the limit of {limits.max_files} files and folders")
    seen: dict[str, str] = {}
    entries = []
    for raw_name, mode, sha in raw_entries:  # names first: a duplicate is never read
        name = check_name(raw_name, where)
        folded = unicodedata.normalize("NFC", name).casefold()
        if folded in seen:
            raise UnsafeTree(f"{where + name!r}: collides with {where + seen[folded]!r} (the same name, or the "
                             "same when case is folded)")
        seen[folded] = name
        entries.append((name, folded, mode, sha))
    for name, folded, mode, sha in entries:
        path = where + name
        if len(path.encode()) > limits.max_path_bytes:
            raise UnsafeTree(f"{path[:80]!r}...: the path is longer than the limit of {limits.max_path_bytes} bytes")
        is_dir = mode == _MODE_TREE
        if walk.ignore.is_ignored(path + "/" if is_dir else path):
            continue
        if is_dir:
            walk.dirs.append(path)
            _check_tree(repo, sha, path + "/", depth + 1, walk)
        elif mode in _REGULAR_MODES:
            declared = walk.sizes.get(sha)
            if declared is not None:
                _check_size(path, declared, walk)
            walk.blobs.append((path, sha, 0o755 if mode & 0o111 else 0o644))
        elif mode == _MODE_LINK:
            if folded == ".gitmodules":
                raise UnsafeTree(f"{path!r}: .gitmodules must not be a symbolic link")
            raw_target = _read_blob(repo, sha, path, limits, walk.sizes)
            try:
                link = raw_target.decode("utf-8")
            except UnicodeDecodeError:
                raise UnsafeTree(f"{path!r}: the symbolic link's target is not UTF-8") from None
            if not link or "\0" in link or len(link.encode()) > limits.max_path_bytes:
                raise UnsafeTree(f"{path!r}: the symbolic link's target is empty, too long or holds NUL")
            if link.startswith("/"):
                raise UnsafeTree(f"{path!r}: the symbolic link points to the absolute path {link!r}, outside the "
                                 "repository")
            walk.links.append((path, link))
        elif mode == _MODE_GITLINK:
            raise UnsafeTree(f"{path!r}: is a submodule (gitlink {sha.decode()}); submodules are not fetched: "
                             "remove it or add it to spec.ignore")
        else:
            raise UnsafeTree(f"{path!r}: unsupported file mode {mode:o}")


def _check_size(path: str, size: int, walk: _Walk) -> None:
    limits = walk.limits
    if size > limits.max_file_bytes:
        raise UnsafeTree(f"{path!r}: {size} bytes, larger than the limit of {limits.max_file_bytes} bytes "
                         "for one file")
    walk.total += size
    if walk.total > limits.max_total_bytes:
        raise UnsafeTree(f"{path!r}: the tree is larger than the limit of {limits.max_total_bytes} bytes")


def _write(repo: Repo, dest: Path, walk: _Walk) -> None:
    """Write the checked entries: folders, then files (O_EXCL|O_NOFOLLOW), then links (last, so no
    write can follow one); then check each link resolves inside `dest`."""
    for path in walk.dirs:
        os.mkdir(dest / path, 0o755)
        os.chmod(dest / path, 0o755)
    total = 0
    for path, sha, mode in walk.blobs:
        data = _read_blob(repo, sha, path, walk.limits, walk.sizes)
        total += len(data)
        if total > walk.limits.max_total_bytes:
            raise UnsafeTree(f"{path!r}: the tree is larger than the limit of {walk.limits.max_total_bytes} bytes")
        fd = os.open(dest / path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    _write_links(dest, walk.links)


def _write_links(dest: Path, links: list[tuple[str, str]]) -> None:
    """Create the symbolic links last (no write can follow one), then check each stays inside."""
    root = os.path.realpath(dest)
    for path, link in links:
        os.symlink(link, dest / path)
    for path, link in links:
        resolved = os.path.realpath(dest / path)
        if os.path.commonpath([root, resolved]) != root:
            raise UnsafeTree(f"{path!r}: the symbolic link {link!r} resolves outside the repository")
        try:
            os.stat(dest / path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeTree(f"{path!r}: the symbolic link {link!r} is a loop") from None


def tree_digest(root: Path) -> str:
    """`sha256:<hex>` over a checked-out tree: every path (sorted), its kind, mode and content.

    Flux digests its tar.gz; we publish a folder, so the digest covers what the folder holds,
    canonically: the same tree always gives the same digest, any change gives another.
    """
    digest = hashlib.sha256()
    root = Path(root)
    for current, dirs, files in os.walk(root):
        dirs.sort()
        rel_dir = os.path.relpath(current, root)
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(current, d))]):
            full = os.path.join(current, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if os.path.islink(full):
                digest.update(b"L\0" + rel.encode() + b"\0" + os.readlink(full).encode() + b"\0")
                continue
            mode = b"755" if os.stat(full).st_mode & 0o111 else b"644"
            content = hashlib.sha256()
            with open(full, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    content.update(chunk)
            digest.update(b"F\0" + rel.encode() + b"\0" + mode + b"\0" + content.digest())
        for name in dirs:
            if not os.path.islink(os.path.join(current, name)):
                digest.update(b"D\0" + os.path.normpath(os.path.join(rel_dir, name)).encode() + b"\0")
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(current, d))]
    return "sha256:" + digest.hexdigest()
