"""SemVer 2 versions and Helm-style constraints (`>=1.2.0 <2.0.0`, `^1.2`, `~1.2.3`, `1.x`, `a || b`).

The one seam of `semantic_version` in charting: a chart's `version`, a dependency's `version`
range and `kubeVersion` are checked here, so the library's types stay out of the rest.
"""

from __future__ import annotations

import re

import semantic_version


class VersionError(ValueError):
    """A version or constraint that does not parse."""


def parse(text: str) -> semantic_version.Version:
    """A strict SemVer 2 version (`1.2.3`, `1.2.3-rc.1+build`); a leading `v` is accepted as Helm does."""
    try:
        return semantic_version.Version(str(text).strip().removeprefix("v"))
    except ValueError:
        raise VersionError(f'"{text}" is not a SemVer 2 version (MAJOR.MINOR.PATCH)') from None


def is_valid(text: str) -> bool:
    try:
        parse(text)
    except VersionError:
        return False
    return True


_CLAUSE_SPLIT = re.compile(r"\s*,\s*|\s+(?=[<>=!^~])")


def _spec(alternative: str) -> semantic_version.SimpleSpec:
    clauses = [c.replace(" ", "") for c in _CLAUSE_SPLIT.split(alternative.strip()) if c.strip()]
    normalised = []
    for clause in clauses:
        # Masterminds' `1.2.x` / `1.2.*` wildcards and `=1.2.3` equality, in SimpleSpec's spelling
        clause = clause.replace(".x", ".*").replace(".X", ".*")
        if clause.startswith("=") and not clause.startswith("=="):
            clause = "=" + clause
        # `-0` pre-release floors (`>=1.25.0-0`, Helm's idiom to admit pre-releases) mean the bare version
        clause = re.sub(r"-0$", "", clause)
        normalised.append(clause)
    return semantic_version.SimpleSpec(",".join(normalised) or "*")


def check_constraint(constraint: str) -> None:
    """Raise `VersionError` unless `constraint` parses."""
    try:
        for alternative in constraint.split("||"):
            _spec(alternative)
    except ValueError as exc:
        raise VersionError(f'"{constraint}" is not a version constraint: {exc}') from None


def satisfies(version: str, constraint: str) -> bool:
    """`version` meets `constraint`; pre-releases compare by their release part (as `-0` floors admit)."""
    check_constraint(constraint)
    parsed = parse(version)
    candidates = [parsed, semantic_version.Version(major=parsed.major, minor=parsed.minor, patch=parsed.patch)]
    return any(_spec(alt).match(v) for alt in constraint.split("||") for v in candidates)
