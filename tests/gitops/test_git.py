"""Fetching and checking out Git sources: refs as Flux resolves them, and hostile repositories refused.

Every hostile repository is real (built with `git` or object by object with dulwich) and fetched over
a real transport (file://, or HTTP from dulwich's server on 127.0.0.1); each must fail with a message
naming the repository and the path, and leave the staging folder empty.
"""

from __future__ import annotations

import functools
import logging
import os
import tracemalloc
from pathlib import Path

import pytest
from dulwich.objects import Tree
from dulwich.repo import Repo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.gitops import git
from tests.gitops import gitrepos
from tests.gitops.gitrepos import EXEC, FILE, GITLINK, LINK, TREE, Builder

# these tests fetch local repositories: the operator's opt-in, given here
fetch = functools.partial(git.fetch, allow_local=True)
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def _checkout(fetched: git.Fetched, tmp_path: Path, **kwargs) -> tuple[Path, str]:
    dest = Path(os.path.join(tmp_path, "out"))
    if dest.exists():
        import shutil
        shutil.rmtree(dest)
    dest.mkdir()
    return dest, git.checkout(fetched, dest, **kwargs)


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --- refs, revisions, shallow fetches ------------------------------------------------------------


def test_branch_tag_semver_and_commit_resolve_as_flux_writes_them(tmp_path: Path, cache: Path) -> None:
    src = gitrepos.init(tmp_path / "src", {"app/cm.yaml": CM.format("one")})
    first = gitrepos.git(src, "rev-parse", "HEAD")
    gitrepos.git(src, "tag", "v1.0.0")
    second = gitrepos.commit_files(src, {"app/cm.yaml": CM.format("two")})
    gitrepos.git(src, "tag", "-a", "v1.2.0", "-m", "annotated")
    gitrepos.git(src, "tag", "v2.0.0-rc.1")
    url = f"file://{src}"
    assert fetch(url, git.Ref(branch="main"), cache).revision == f"main@sha1:{second}"
    assert fetch(url, git.Ref(tag="v1.0.0"), cache).revision == f"v1.0.0@sha1:{first}"
    assert fetch(url, git.Ref(tag="v1.2.0"), cache).revision == f"v1.2.0@sha1:{second}"  # peeled
    # the highest tag in range; a pre-release only when the range asks for one
    assert fetch(url, git.Ref(semver=">=1.0.0"), cache).revision == f"v1.2.0@sha1:{second}"
    assert fetch(url, git.Ref(semver="~1.0"), cache).revision == f"v1.0.0@sha1:{first}"
    assert fetch(url, git.Ref(commit=first), cache).revision == f"sha1:{first}"
    assert fetch(url, git.Ref(branch="main", commit=first), cache).revision == f"main@sha1:{first}"
    fetched = fetch(str(src), git.Ref(branch="main"), cache)  # a plain absolute path too
    out, _ = _checkout(fetched, tmp_path)
    assert (out / "app" / "cm.yaml").read_text() == CM.format("two")


def test_branch_fetches_are_shallow(tmp_path: Path, cache: Path) -> None:
    src = gitrepos.init(tmp_path / "src", {"a.yaml": "1"})
    for i in range(3):
        gitrepos.commit_files(src, {"a.yaml": str(i)})
    fetched = fetch(f"file://{src}", git.Ref(branch="main"), cache)
    with Repo(str(fetched.cache_dir)) as repo:
        assert repo.get_shallow() == {fetched.commit.encode()}
        head = repo.object_store[fetched.commit.encode()]
        assert head.parents and head.parents[0] not in repo.object_store  # history was not fetched


def test_the_cache_stays_bounded(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(git, "MAX_CACHED_PACKS", 3)
    src = gitrepos.init(tmp_path / "src", {"a.yaml": "0"})
    for i in range(1, 8):
        head = gitrepos.commit_files(src, {"a.yaml": str(i)})
        fetched = fetch(f"file://{src}", git.Ref(branch="main"), cache)
        assert fetched.commit == head
        assert len(list((fetched.cache_dir / "objects" / "pack").glob("*.pack"))) <= 4
    out, _ = _checkout(fetched, tmp_path)
    assert (out / "a.yaml").read_text() == "7"


def test_a_gitmodules_pointing_elsewhere_is_not_followed(tmp_path: Path, cache: Path) -> None:
    b = Builder(tmp_path / "src")
    modules = b'[submodule "x"]\n\tpath = x\n\turl = file:///etc\n'
    b.commit(b.files({".gitmodules": modules, "x": (GITLINK, b"2" * 40), "a.yaml": b"a"}))
    fetched = fetch(f"file://{b.path}", git.Ref(branch="main"), cache)
    with pytest.raises(git.UnsafeTree, match=r"'x': is a submodule"):
        _checkout(fetched, tmp_path)
    out, _ = _checkout(fetched, tmp_path, ignore=".gitmodules\nx\n")
    assert _listing(out) == ["a.yaml"]


def test_unknown_refs_are_reported(tmp_path: Path, cache: Path) -> None:
    src = gitrepos.init(tmp_path / "src", {"a.yaml": "1"})
    url = f"file://{src}"
    with pytest.raises(git.RefNotFound, match=r'src: couldn\'t find remote ref "refs/heads/nope"'):
        fetch(url, git.Ref(branch="nope"), cache)
    with pytest.raises(git.RefNotFound, match='refs/tags/v9'):
        fetch(url, git.Ref(tag="v9"), cache)
    with pytest.raises(git.RefNotFound, match="no tag matches the SemVer range '>=1.0.0'"):
        fetch(url, git.Ref(semver=">=1.0.0"), cache)
    with pytest.raises(git.GitError, match="invalid SemVer range"):
        fetch(url, git.Ref(semver="not a range!"), cache)
    with pytest.raises(git.RefNotFound, match="not found in the repository"):
        fetch(url, git.Ref(commit="0" * 40), cache)
    with pytest.raises(git.RefNotFound, match='refs/heads/master'):  # Flux's default branch
        fetch(url, git.Ref(), cache)
    with pytest.raises(git.GitError, match="spec.ref.commit: must be a full 40-character"):
        git.Ref.from_spec({"commit": "abc"})


def test_force_push_gives_the_new_commit(tmp_path: Path, cache: Path) -> None:
    src = gitrepos.init(tmp_path / "src", {"a.yaml": "one"})
    gitrepos.commit_files(src, {"a.yaml": "two"})
    before = fetch(f"file://{src}", git.Ref(branch="main"), cache)
    gitrepos.git(src, "reset", "-q", "--hard", "HEAD~1")
    rewritten = gitrepos.commit_files(src, {"a.yaml": "rewritten"})  # not a descendant of `before`
    after = fetch(f"file://{src}", git.Ref(branch="main"), cache)
    assert after.commit == rewritten != before.commit
    out, _ = _checkout(after, tmp_path)
    assert (out / "a.yaml").read_text() == "rewritten"


def test_tag_pointing_at_a_tree_is_refused(tmp_path: Path, cache: Path) -> None:
    b = Builder(tmp_path / "src")
    tree = b.files({"a.yaml": b"x"})
    b.commit(tree)
    b.tag("v1.0.0", tree, Tree)
    with pytest.raises(git.GitError, match=r"src: v1.0.0: points to a tree, not a commit"):
        fetch(f"file://{b.path}", git.Ref(tag="v1.0.0"), cache)


# --- URLs and credentials ------------------------------------------------------------------------


@pytest.mark.parametrize("url, message", [
    ("ext::sh -c touch% /tmp/pwned", "whitespace"),
    ("ext::sh", r"transport::address syntax \(ext::\)"),
    ("fd::3", "transport::address"),
    ("--upload-pack=touch /tmp/pwned", "whitespace"),
    ("--upload-pack=id", "must not start with '-'"),
    ("-oProxyCommand=id", "must not start with '-'"),
    ("ssh://-oProxyCommand=id/x", "no valid host"),
    ("git@host.example:org/repo", "scp-like address"),
    ("https://-oProxyCommand=id/x", "no valid host"),
    ("relative/path", "a relative path is not supported"),
    ("file://host.example/etc", "must name an absolute local path"),
    ("/srv/../etc", "must be normalised"),
    ("https://a.example/x\n", "control characters"),
    ("", "Required value"),
])
def test_hostile_urls_are_refused_before_any_transport(url: str, message: str, cache: Path) -> None:
    with pytest.raises(git.InvalidURL, match=message):
        fetch(url, git.Ref(branch="main"), cache)
    assert not cache.exists()


def test_local_sources_need_the_operators_opt_in(tmp_path: Path, cache: Path) -> None:
    src = gitrepos.init(tmp_path / "src", {"a.yaml": "1"})
    for url in (f"file://{src}", str(src)):
        with pytest.raises(git.InvalidURL, match="file:// URLs and local paths are disabled"):
            git.fetch(url, git.Ref(branch="main"), cache)
    assert not cache.exists()


def test_credentials_in_a_url_never_reach_a_message(cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = "https://alice:s3cr3t-pw@127.0.0.1:1/repo.git?token=t0ken"
    with pytest.raises(git.GitError) as caught:
        fetch(url, git.Ref(branch="main"), cache, timeout=5)
    text = str(caught.value)
    assert "s3cr3t-pw" not in text and "t0ken" not in text and "alice" not in text
    assert text.startswith("https://127.0.0.1:1/repo.git: fetch failed")
    assert git.redact(url) == "https://127.0.0.1:1/repo.git"
    assert "s3cr3t-pw" not in caplog.text  # nor in dulwich's or urllib3's logs


def test_http_basic_auth_bearer_token_and_refusal(http_repo: tuple[str, Path], tmp_path: Path, cache: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url, src = http_repo
    head = gitrepos.git(src, "rev-parse", "HEAD")
    fetched = fetch(url, git.Ref(branch="main"), cache, credentials=git.Credentials("alice", "pw"))
    assert fetched.revision == f"main@sha1:{head}"
    out, _ = _checkout(fetched, tmp_path)
    assert (out / "app" / "cm.yaml").read_text() == CM.format("served")
    assert fetch(url, git.Ref(branch="main"), tmp_path / "c2",
                     credentials=git.Credentials(bearer_token="tok-123")).commit == head
    with pytest.raises(git.GitError) as caught:
        fetch(url, git.Ref(branch="main"), tmp_path / "c3", credentials=git.Credentials("alice", "wrong-pw"))
    assert "wrong-pw" not in str(caught.value) and str(caught.value).startswith(url.rstrip("/"))
    with pytest.raises(git.GitError) as caught:
        fetch(url, git.Ref(branch="main"), tmp_path / "c4", credentials=git.Credentials(bearer_token="bad-tok"))
    assert "bad-tok" not in str(caught.value)
    # credentials written into the URL are used, and not shown
    userinfo = url.replace("http://", "http://alice:pw@")
    assert fetch(userinfo, git.Ref(branch="main"), tmp_path / "c5").url == url
    assert "wrong-pw" not in caplog.text and "bad-tok" not in caplog.text and "tok-123" not in caplog.text
    assert "alice:pw" not in caplog.text


def test_credentials_never_follow_a_redirect_to_another_origin(redirecting: tuple[str, list], tmp_path: Path) -> None:
    url, seen = redirecting
    for i, credentials in enumerate((git.Credentials(bearer_token="tok-123"), git.Credentials("alice", "pw"))):
        try:
            fetch(url, git.Ref(branch="main"), tmp_path / f"c{i}", credentials=credentials)
        except git.GitError:
            pass  # refusing the redirect is fine too; sending the secret elsewhere is not
    assert seen, "the redirect was never followed: the test proves nothing"
    assert not any(seen), seen


# --- the checkout: what is written, and the digest -------------------------------------------------


def test_modes_links_ignore_and_digest(tmp_path: Path, cache: Path) -> None:
    b = Builder(tmp_path / "src")
    b.commit(b.files({
        "app": {"cm.yaml": CM.format("a").encode(), "run.sh": (EXEC, b"#!/bin/sh\n"),
                "legacy": (0o100664, b"x"), "here": (LINK, b"cm.yaml"), "up": (LINK, b"../README.md")},
        "README.md": b"readme", ".github": {"workflows": {"ci.yaml": b"x"}}, "logo.png": b"png",
        ".sourceignore": b"secret/\n", "secret": {"key": b"k"}}))
    fetched = fetch(f"file://{b.path}", git.Ref(branch="main"), cache)
    out, digest = _checkout(fetched, tmp_path)
    assert _listing(out) == [".sourceignore", "README.md", "app", "app/cm.yaml", "app/here", "app/legacy",
                             "app/run.sh", "app/up"]
    assert (out / "app" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (out / "app" / "legacy").stat().st_mode & 0o777 == 0o644
    assert (out / "app" / "cm.yaml").stat().st_mode & 0o777 == 0o644
    assert os.readlink(out / "app" / "up") == "../README.md"
    assert digest.startswith("sha256:") and len(digest) == 71
    assert _checkout(fetched, tmp_path)[1] == digest  # the same tree, the same digest
    # spec.ignore replaces the default exclusions (the root .sourceignore still applies)
    out, other = _checkout(fetched, tmp_path, ignore="*.png\n# a comment\napp/legacy\n")
    assert ".github/workflows/ci.yaml" in _listing(out) and "app/legacy" not in _listing(out)
    assert "secret" not in _listing(out) and other != digest


def test_digest_changes_with_content_mode_and_links(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "a").write_text("1")
    first = git.tree_digest(root)
    (root / "a").chmod(0o755)
    second = git.tree_digest(root)
    (root / "a").write_text("2")
    third = git.tree_digest(root)
    (root / "l").symlink_to("a")
    fourth = git.tree_digest(root)
    (root / "d").mkdir()
    assert len({first, second, third, fourth, git.tree_digest(root)}) == 5


def test_hooks_and_config_of_the_source_never_run(tmp_path: Path, cache: Path) -> None:
    src = gitrepos.init(tmp_path / "src", {"a.yaml": "1"})
    marker = tmp_path / "pwned"
    for hook in ("post-checkout", "post-merge", "pre-upload", "reference-transaction", "fsmonitor"):
        path = src / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\ntouch {marker}\n")
        path.chmod(0o755)
    gitrepos.git(src, "config", "core.fsmonitor", f"touch {marker}")
    gitrepos.git(src, "config", "core.sshCommand", f"touch {marker}")
    gitrepos.git(src, "config", "uploadpack.packObjectsHook", f"touch {marker}")
    (src / ".gitattributes").write_text("*.yaml filter=evil\n")
    gitrepos.git(src, "config", "filter.evil.smudge", f"touch {marker}")
    gitrepos.commit_files(src, {"b.yaml": "2"})
    marker.unlink(missing_ok=True)  # the commit above ran the repository's own hooks: start clean
    fetched = fetch(f"file://{src}", git.Ref(branch="main"), cache)
    out, _ = _checkout(fetched, tmp_path)
    assert not marker.exists()
    assert (out / "b.yaml").read_text() == "2" and not (out / ".git").exists()


# --- hostile trees -----------------------------------------------------------------------------------

HOSTILE = {
    "absolute symlink": ({"passwd": (LINK, b"/etc/passwd")}, r"'passwd': the symbolic link points to the absolute"),
    "relative escape": ({"a": {"p": (LINK, b"../../etc/passwd")}}, r"'a/p': the symbolic link '../../etc/passwd' "
                                                                   "resolves outside"),
    "folder escape": ({"up": (LINK, b"..")}, r"'up': the symbolic link '..' resolves outside"),
    "chain escape": ({"sub": {"up": (LINK, b".."), "e": (LINK, b"up/..")}}, r"'sub/e': .* resolves outside"),
    "chain of links": ({"l1": (LINK, b"l2"), "l2": (LINK, b"l3"), "l3": (LINK, b"../x")}, r"'l1'.*resolves outside"),
    "loop": ({"x": (LINK, b"y"), "y": (LINK, b"x")}, r"'x': the symbolic link 'y' is a loop"),
    "dot-dot name": ({"..": {"evil": b"x"}}, r"'\.\.': the name '\.\.' is not allowed"),
    "dot name": ({".": b"x"}, r"the name '\.' is not allowed"),
    "slash in name": ({"../evil": b"x"}, r"must not contain '/'"),
    "absolute name": ({"/etc/cron.d/x": b"x"}, r"must not contain '/'"),
    "backslash": ({"..\\evil": b"x"}, "must not contain '/' or '\\\\'"),
    "nul": ({"a\nb": b"x"}, "control characters"),
    ".git hooks": ({".git": {"hooks": {"post-checkout": (EXEC, b"#!/bin/sh\nid\n")}}}, r"'\.git': the name is"),
    ".GIT": ({".GIT": {"config": b"[core]\nfsmonitor=id\n"}}, r"'\.GIT': the name is"),
    "nested .Git": ({"a": {".Git": {"config": b"x"}}}, r"'a/\.Git': the name is"),
    "NTFS short name": ({"GIT~1": {"config": b"x"}}, r"'GIT~1': the name is"),
    "NTFS trailing dot": ({".git.": {"config": b"x"}}, r"the name is"),
    "NTFS trailing space": ({".git ": {"config": b"x"}}, r"the name is"),
    "NTFS stream": ({".git::$INDEX_ALLOCATION": {"config": b"x"}}, r"the name is"),
    "HFS ignorable": ({".g\u200cit": {"config": b"x"}}, r"the name is"),
    "case collision": ({"README": b"a", "readme": b"b"}, r"'readme': collides with 'README'"),
    "gitlink": ({"vendor": (GITLINK, b"1" * 40)}, r"'vendor': is a submodule \(gitlink"),
    ".gitmodules link": ({".gitmodules": (LINK, b"a")}, r"\.gitmodules must not be a symbolic link"),
    "odd mode": ({"dev": (0o020644, b"x")}, r"'dev': unsupported file mode 20644"),
    "not utf-8": ({b"\xff\xfe": b"x"}, r"the name is not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_trees_are_refused_and_nothing_is_written(case: str, tmp_path: Path, cache: Path) -> None:
    tree, message = HOSTILE[case]
    b = Builder(tmp_path / "src")
    b.commit(b.files({"ok.yaml": b"fine", **tree}))
    fetched = fetch(f"file://{b.path}", git.Ref(branch="main"), cache)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(git.UnsafeTree, match=message) as caught:
        git.checkout(fetched, dest, ignore="")
    assert str(caught.value).startswith(f"file://{b.path}: ")
    assert list(dest.iterdir()) == []
    assert os.path.exists("/etc/passwd") and not (tmp_path / "x").exists() and not (tmp_path / "evil").exists()


def test_duplicate_entries_are_refused(tmp_path: Path, cache: Path) -> None:
    b = Builder(tmp_path / "src")
    link, blob = b.blob(b"/etc"), b.blob(b"x")
    inner = b.tree([("x", FILE, blob)])
    # "d" twice: a link out and a folder; written naively, "d/x" would land in /etc
    b.commit(b.tree([("d", LINK, link), ("d", TREE, inner)]))
    fetched = fetch(f"file://{b.path}", git.Ref(branch="main"), cache)
    with pytest.raises(git.UnsafeTree, match=r"'d': collides with 'd'"):
        _checkout(fetched, tmp_path)


def test_a_gitlink_can_be_ignored(tmp_path: Path, cache: Path) -> None:
    b = Builder(tmp_path / "src")
    b.commit(b.files({"a.yaml": b"a", "vendor": (GITLINK, b"1" * 40)}))
    out, _ = _checkout(fetch(f"file://{b.path}", git.Ref(branch="main"), cache), tmp_path, ignore="vendor\n")
    assert _listing(out) == ["a.yaml"]


def test_many_files_deep_nesting_and_long_paths_are_bounded(tmp_path: Path, cache: Path) -> None:
    b = Builder(tmp_path / "src")
    blob = b.blob(b"x")
    wide = b.tree(sorted(((f"f{i:06d}", FILE, blob) for i in range(100_000)), key=lambda e: e[0]))
    deep = b.files({"leaf": b"x"})
    for _ in range(100):
        deep = b.tree([("d", TREE, deep)])
    long_name = b.files({"n" * 250: {"n" * 250: {"n" * 250: {"n" * 250: {"n" * 250: {"f": b"x"}}}}}})
    cases = {"wide": (wide, r"'/': more than the limit of 50000 files"),
             "deep": (deep, r"nested deeper than the limit of 64 folders"),
             "long": (long_name, r"the path is longer than the limit of 1024 bytes")}
    for branch, (tree, message) in cases.items():
        b.commit(tree, branch=branch)
        fetched = fetch(f"file://{b.path}", git.Ref(branch=branch), cache)
        dest = tmp_path / branch
        dest.mkdir()
        with pytest.raises(git.UnsafeTree, match=message):
            git.checkout(fetched, dest)
        assert list(dest.iterdir()) == []  # refused before anything was written


def test_sizes_are_bounded(tmp_path: Path, cache: Path) -> None:
    b = Builder(tmp_path / "src")
    b.commit(b.files({"big": b"\0" * (8 * 1024 * 1024), "small": b"s"}))
    fetched = fetch(f"file://{b.path}", git.Ref(branch="main"), cache)
    limits = git.Limits(max_file_bytes=1024 * 1024)
    with pytest.raises(git.UnsafeTree, match=r"'big': 8388608 bytes, larger than the limit of 1048576"):
        _checkout(fetched, tmp_path, limits=limits)
    with pytest.raises(git.UnsafeTree, match="the tree is larger than the limit of 1000 bytes"):
        _checkout(fetched, tmp_path, limits=git.Limits(max_total_bytes=1000))
    # the pack itself is bounded while it arrives
    with pytest.raises(git.GitError, match="the fetched pack is larger than the limit of 100 bytes"):
        fetch(f"file://{b.path}", git.Ref(branch="main"), tmp_path / "c2", limits=git.Limits(max_fetch_bytes=100))


def test_a_big_blob_over_git_protocol_is_refused_without_inflating_it(git_daemon: tuple[str, Path],
                                                                      tmp_path: Path) -> None:
    """Real `git daemon`, git://, a 20 MiB blob (a few KiB compressed): refused from its pack header."""
    base_url, base = git_daemon
    src = gitrepos.init(base / "big", {"small.yaml": "x"})
    (src / "big.bin").write_bytes(b"\0" * (20 * 1024 * 1024))
    gitrepos.commit_files(src, {}, "big")
    fetched = git.fetch(f"{base_url}/big", git.Ref(branch="main"), tmp_path / "cache")
    dest = tmp_path / "out"
    dest.mkdir()
    tracemalloc.start()
    try:
        with pytest.raises(git.UnsafeTree, match=r"git://127\.0\.0\.1:\d+/big: 'big.bin': 20971520 bytes, larger"):
            git.checkout(fetched, dest, limits=git.Limits(max_file_bytes=1024 * 1024))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak  # the 20 MiB were never inflated
    assert list(dest.iterdir()) == []
    with pytest.raises(git.RefNotFound, match="refs/heads/nope"):
        git.fetch(f"{base_url}/big", git.Ref(branch="nope"), tmp_path / "cache")


def test_a_huge_declared_size_is_refused_from_the_header(tmp_path: Path) -> None:
    """A blob claiming 1 GiB is refused by its header alone: its content is never inflated."""
    b = Builder(tmp_path / "src")
    claim = b.loose_claim(1 << 30, b"only a few bytes")
    commit = b.commit(b.tree([("huge.bin", FILE, claim)]))
    fetched = git.Fetched(commit.decode(), f"main@sha1:{commit.decode()}", b.path, "file:///hostile")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(git.UnsafeTree, match=r"file:///hostile: 'huge.bin': 1073741824 bytes, larger than the limit"):
        git.checkout(fetched, dest)
    assert list(dest.iterdir()) == []


def test_pack_header_sizes_of_deltas_are_read() -> None:
    """The size parser for packed objects: a plain header and an OFS_DELTA's result size."""
    import zlib
    # a blob (type 3) of 300 bytes: 0b1_011_1100, then 300 >> 4 = 18
    assert git._pack_object_size(bytes([0x80 | (3 << 4) | (300 & 15), 300 >> 4]) + b"...") == 300
    # an OFS_DELTA (type 6) with base offset byte 0x05; delta header: base 10, result 5000
    delta = bytes([10, 0x80 | (5000 & 0x7F), 5000 >> 7]) + b"ops"
    entry = bytes([(6 << 4) | len(delta), 0x05]) + zlib.compress(delta)
    assert git._pack_object_size(entry) == 5000


_PARTS = st.sampled_from(["..", ".", "a", "b", "l1", "l2", "sub"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(links=st.lists(st.tuples(st.sampled_from(["l1", "l2", "sub/l1", "sub/l2"]),
                                st.lists(_PARTS, min_size=1, max_size=5)), min_size=1, max_size=4,
                      unique_by=lambda item: item[0]))
def test_any_accepted_link_resolves_inside(links: list, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Random links (through each other, up and down): whatever is accepted resolves inside the tree."""
    root = tmp_path_factory.mktemp("prop")
    b = Builder(root / "src")
    top = {"a": {"f": b"x"}, "sub": {}}
    for path, parts in links:
        folder = top["sub"] if path.startswith("sub/") else top
        folder[path.rsplit("/", 1)[-1]] = (LINK, "/".join(parts).encode())
    commit = b.commit(b.files(top))
    fetched = git.Fetched(commit.decode(), "main@sha1:" + commit.decode(), b.path, "file:///prop")
    dest = root / "out"
    dest.mkdir()
    try:
        git.checkout(fetched, dest, ignore="")
    except git.UnsafeTree as exc:
        assert "resolves outside" in str(exc) or "is a loop" in str(exc), exc
        assert list(dest.iterdir()) == []
        return
    inside = os.path.realpath(dest)
    for path, _parts in links:
        resolved = os.path.realpath(dest / path)
        assert os.path.commonpath([inside, resolved]) == inside, (path, resolved)
