"""Fixtures for runtime tests: a live fault-injecting HTTP server and an isolated environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.fault_server import FaultServer
from tests.runtime.helpers import Env


@pytest.fixture
def server() -> Iterator[FaultServer]:
    """A started :class:`FaultServer` on 127.0.0.1, stopped after the test."""
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def env(tmp_path: Path, server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> Env:
    """OMNIHUB_* pointing at a fresh home and the test server, with fast retries."""
    home = tmp_path / "home"
    for name in ("OMNIHUB_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OMNIHUB_ALLOW_HTTP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMNIHUB_HOME", str(home))
    monkeypatch.setenv("OMNIHUB_URL", server.url + "/zoo")
    monkeypatch.setenv("OMNIHUB_RETRIES", "4")
    monkeypatch.setenv("OMNIHUB_BACKOFF", "0.01")
    monkeypatch.setenv("OMNIHUB_BACKOFF_MAX", "0.05")
    monkeypatch.setenv("OMNIHUB_READ_TIMEOUT", "2")
    monkeypatch.setenv("OMNIHUB_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("OMNIHUB_DISABLE_PROGRESS", "1")
    monkeypatch.setenv("HF_ENDPOINT", server.url + "/hf")
    return Env(home=home, server=server, base=server.url + "/zoo")
