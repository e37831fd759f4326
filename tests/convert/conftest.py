"""Fixtures for the conversion tests: a clean layer-converter registry around every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from omnihub.convert import dl4j


@pytest.fixture(autouse=True)
def fresh_layer_registry() -> Iterator[None]:
    """Forget API registrations and entry points read by a previous test."""
    dl4j.reset_registry()
    yield
    dl4j.reset_registry()
