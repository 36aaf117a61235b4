"""Fixtures for the API integration tests: an httpx client and a fresh namespace per test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests import support
from tests.api import helpers


@pytest.fixture(scope="module")
def client(api_server: str) -> Iterator[httpx.Client]:
    with support.connection(api_server).http_client() as http_client:
        yield http_client


@pytest.fixture
def ns(client: httpx.Client) -> str:
    """A fresh namespace, so tests sharing a module's server do not see each other's objects."""
    return helpers.make_namespace(client)
