"""Fixtures for the loader tests: a registry reset around every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from omnihub.loaders import _registry


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    """Forget API registrations and entry points read by a previous test."""
    _registry._registry.reset()
    yield
    _registry._registry.reset()
