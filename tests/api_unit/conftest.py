"""Fixtures for the pure API-layer tests: a registry of the shipped CRDs, and sample objects."""

from __future__ import annotations

import copy

import pytest

from reconcile.api import registry
from tests.api_unit import samples


@pytest.fixture(scope="session")
def builtin_registry() -> registry.Registry:
    return registry.with_builtins()


@pytest.fixture
def reg() -> registry.Registry:
    """A fresh registry with the built-ins and the Widget CRD (tests may mutate it)."""
    fresh = registry.with_builtins()
    fresh.add_crd(copy.deepcopy(samples.WIDGETS_CRD))
    return fresh


@pytest.fixture
def deployment() -> dict:
    return copy.deepcopy(samples.DEPLOYMENT)
