"""Fixtures for runtime tests: a live fault-injecting HTTP server and an isolated environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.fault_server import FaultServer
from tests.runtime.helpers import Env, isolated_env


@pytest.fixture
def server() -> Iterator[FaultServer]:
    """A started :class:`FaultServer` on 127.0.0.1, stopped after the test."""
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def env(tmp_path: Path, server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> Env:
    """OMNIHUB_* pointing at a fresh home and the test server, with fast retries."""
    return isolated_env(tmp_path / "home", server, monkeypatch)
