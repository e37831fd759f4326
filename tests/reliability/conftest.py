"""Fixtures of the reliability suite: live fault servers and an isolated omnihub environment.

Everything is per test (free ports, ``tmp_path`` homes), so the suite is xdist-safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import omnihub.download._http
import pytest

from tests.reliability._support import HostServer
from tests.runtime.helpers import Env, isolated_env


@pytest.fixture
def server() -> Iterator[HostServer]:
    """A started fault server on 127.0.0.1."""
    srv = HostServer("127.0.0.1")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def other_server() -> Iterator[HostServer]:
    """A second fault server on 127.0.0.2: another host, another origin."""
    try:
        srv = HostServer("127.0.0.2")
        srv.start()
    except OSError as exc:  # pragma: no cover - platforms without 127/8 routing
        pytest.skip(f"cannot bind 127.0.0.2: {exc}")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def env(tmp_path: Path, server: HostServer, monkeypatch: pytest.MonkeyPatch) -> Env:
    """OMNIHUB_* pointing at a fresh home and the test server, with fast retries."""
    return isolated_env(tmp_path / "home", server, monkeypatch)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record backoff delays instead of sleeping (the downloader's own sleep hook)."""
    delays: list[float] = []
    monkeypatch.setattr(omnihub.download._http, "pause", delays.append)
    return delays
