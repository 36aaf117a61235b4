"""Repositories built for tests: with the real `git` binary for ordinary history, and object by object
with dulwich for trees no `git` would write (`..` names, duplicates, `.git` aliases, odd modes).

A test helper, not a double: the repositories are real and are fetched over a real transport.
"""

from __future__ import annotations

import os
import subprocess
import time
import zlib
from pathlib import Path

from dulwich.objects import Blob, Commit, ShaFile, Tag, Tree
from dulwich.repo import Repo

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}

FILE, EXEC, LINK, TREE, GITLINK = 0o100644, 0o100755, 0o120000, 0o040000, 0o160000


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **ENV}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def init(path: Path, files: dict[str, str] | None = None, branch: str = "main") -> Path:
    """A real repository with one commit of `files` on `branch`."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    if files:
        commit_files(path, files)
    return path


def commit_files(path: Path, files: dict[str, str], message: str = "change") -> str:
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", message)
    return git(path, "rev-parse", "HEAD")


def _tree_raw(entries: list[tuple[bytes, int, bytes]]) -> bytes:
    """A tree's bytes exactly as listed: duplicates, order and names are not corrected."""
    return b"".join(f"{mode:o}".encode() + b" " + name + b"\0" + bytes.fromhex(sha.decode())
                    for name, mode, sha in entries)


class Builder:
    """Objects written straight into a bare repository: what a hostile server could hold."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.repo = Repo.init_bare(str(path))
        self.path = path

    def blob(self, data: bytes) -> bytes:
        blob = Blob.from_string(data)
        self.repo.object_store.add_object(blob)
        return blob.id

    def tree(self, entries: list[tuple[bytes | str, int, bytes]]) -> bytes:
        raw = _tree_raw([(n.encode() if isinstance(n, str) else n, m, s) for n, m, s in entries])
        tree = ShaFile.from_raw_string(Tree.type_num, raw)
        self.repo.object_store.add_object(tree)
        return tree.id

    def files(self, mapping: dict) -> bytes:
        """A tree from {name: bytes | dict | (mode, bytes | sha)}."""
        entries = []
        for name, value in mapping.items():
            if isinstance(value, dict):
                entries.append((name, TREE, self.files(value)))
            elif isinstance(value, tuple):
                mode, data = value
                sha = data if mode in (GITLINK, TREE) else self.blob(data)
                entries.append((name, mode, sha))
            else:
                entries.append((name, FILE, self.blob(value)))
        return self.tree(sorted(entries, key=lambda e: e[0].encode() if isinstance(e[0], str) else e[0]))

    def commit(self, tree: bytes, branch: str = "main", parents: list[bytes] | None = None) -> bytes:
        commit = Commit()
        commit.tree = tree
        commit.parents = parents or []
        commit.author = commit.committer = b"t <t@example.com>"
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = b"hostile\n"
        self.repo.object_store.add_object(commit)
        self.repo.refs[f"refs/heads/{branch}".encode()] = commit.id
        return commit.id

    def tag(self, name: str, target: bytes, kind: type = Commit) -> bytes:
        """An annotated tag of `target` (a Commit, or a Tree where a hostile server puts one)."""
        tag = Tag()
        tag.name = name.encode()
        tag.object = (kind, target)
        tag.tagger = b"t <t@example.com>"
        tag.tag_time = int(time.time())
        tag.tag_timezone = 0
        tag.message = b"tag\n"
        self.repo.object_store.add_object(tag)
        self.repo.refs[f"refs/tags/{name}".encode()] = tag.id
        return tag.id

    def loose_claim(self, declared: int, data: bytes) -> bytes:
        """A loose blob whose header claims `declared` bytes (a "1 GiB" file in a few bytes)."""
        raw = zlib.compress(f"blob {declared}\0".encode() + data)
        sha = b"%040x" % declared  # any id: only the header must be read, never the content
        folder = self.path / "objects" / sha[:2].decode()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / sha[2:].decode()).write_bytes(raw)
        return sha
