"""CI cannot be green while skipping: what tests/prerequisites.py and tests/conftest.py promise.

Each case runs a real pytest on a small test file, with and without `CI=true`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import prerequisites

ROOT = Path(__file__).resolve().parents[2]

CASES = '''
import pytest
from tests import prerequisites

def test_needs_a_tool():
    prerequisites.missing("the frobnicator", install="apt-get install frobnicator")

def test_skips_for_another_reason():
    pytest.skip("some data file is not shipped")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False

def test_passes():
    assert True
'''


def _run(tmp_path: Path, **env: str) -> str:
    (tmp_path / "test_cases.py").write_text(CASES)
    # the suite's own hook (turning skips into failures under CI), as tests/conftest.py registers it
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_runtest_makereport  # noqa: F401\n")
    environment = {k: v for k, v in os.environ.items() if k not in ("CI", prerequisites.REQUIRE_VARIABLE)}
    environment.update(env, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "--rootdir",
                             str(tmp_path), str(tmp_path / "test_cases.py")],
                            capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=120)
    return result.stdout + result.stderr


def test_a_developer_may_skip(tmp_path: Path) -> None:
    out = _run(tmp_path)
    assert "2 skipped" in out and "1 passed" in out and "1 xfailed" in out, out
    assert "the frobnicator is missing (to install: apt-get install frobnicator)" in out, out


@pytest.mark.parametrize("env", [{"CI": "true"}, {prerequisites.REQUIRE_VARIABLE: "1"}], ids=["CI", "make-test"])
def test_ci_fails_every_skip_and_says_what_to_install(tmp_path: Path, env: dict[str, str]) -> None:
    out = _run(tmp_path, **env)
    assert "2 failed" in out and "1 passed" in out and "1 xfailed" in out, out
    assert "skipped" not in out.splitlines()[-1], out
    assert "To install: apt-get install frobnicator" in out, out
    assert "some data file is not shipped" in out and "a skip is a failure" in out, out


def test_ci_false_is_a_developer_machine(tmp_path: Path) -> None:
    assert "2 skipped" in _run(tmp_path, CI="false")


def test_kubectl_is_found_by_its_version_not_its_name() -> None:
    found = prerequisites.require_kubectl()
    assert prerequisites.client_version(found) == ("1", prerequisites.KUBECTL_MINOR)


def test_no_kubectl_on_path_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert prerequisites.find_kubectl.__wrapped__() is None


def test_a_file_that_is_not_kubectl_has_no_version(tmp_path: Path) -> None:
    assert prerequisites.client_version(sys.executable) is None
    assert prerequisites.client_version(tmp_path / "kubectl.1.32") is None  # the name alone counts for nothing
