"""Shared helpers for runtime tests: entries, payloads and a child-process runner."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import Catalog, ModelEntry, catalog_to_json

from tests.runtime.fault_server import FaultServer

REPO = Path(__file__).resolve().parents[2]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child interpreter: ours, plus the generated/ and repo paths."""
    paths = [str(REPO / "generated"), str(REPO), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), **(extra or {})}


@dataclass(frozen=True)
class Env:
    """The isolated environment of one test (see the ``env`` fixture)."""

    home: Path
    server: FaultServer
    base: str  # OMNIHUB_URL

    def publish(self, file: str, data: bytes, framework: str = "samediff", **kw: Any) -> str:
        """Serve ``data`` as ``<base>/<framework>/<file>``; returns the URL path."""
        path = f"/zoo/{framework}/{file}"
        self.server.add(path, data, **kw)
        return path


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes (incompressible, so no accidental equality)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(
    file: str = "model.fb",
    *,
    data: bytes | None = None,
    declare: bool = True,
    framework: Framework = Framework.SAMEDIFF,
    **kw: Any,
) -> ModelEntry:
    """A catalogue entry for ``file``; with ``data`` and ``declare``, its sha256 and size."""
    if data is not None and declare:
        kw.setdefault("sha256", sha256(data))
        kw.setdefault("size", len(data))
    name = (
        file.rsplit("/", 1)[-1].split(".", maxsplit=1)[0].replace("-", "_").replace(" ", "_") or "m"
    )
    return ModelEntry(
        name=kw.pop("name", name),
        python_name=kw.pop("python_name", "m_" + name.lower()),
        namespace="TestModels",
        package="testpkg",
        framework=framework,
        model_type=ModelType.SAMEDIFF_PIPELINE,
        format=kw.pop("format", Format.RAW),
        documentation="test model",
        file=file,
        **kw,
    )


def entry_json(model: ModelEntry) -> str:
    """One entry as catalogue JSON (what the child process reads)."""
    return catalog_to_json(Catalog(namespace="TestModels", package="testpkg", models=(model,)))


def spawn_fetch(model: ModelEntry, *, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``python -m tests.runtime.child`` fetching ``model`` in a new process."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.runtime.child", entry_json(model)],
        cwd=REPO,
        env=child_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_python(
    code: str, *, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (), **kw: Any
) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it must print one JSON object as its last line.

    ``prefix`` is prepended to the command line (e.g. ``setpriv`` to drop capabilities).
    """
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", code],
        cwd=REPO,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kw,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


#: Settings a test environment always clears: nothing from the developer's shell leaks in.
CLEARED_SETTINGS = (
    "OMNIHUB_OFFLINE",
    "OMNIHUB_ALLOW_HTTP",
    "OMNIHUB_RETRY_AFTER_MAX",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
)


def isolated_env(home: Path, server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> Env:
    """Point OMNIHUB_* at ``home`` and ``server``, with fast retries and no progress bars."""
    for name in CLEARED_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "OMNIHUB_HOME": str(home),
        "OMNIHUB_URL": server.url + "/zoo",
        "OMNIHUB_RETRIES": "4",
        "OMNIHUB_BACKOFF": "0.01",
        "OMNIHUB_BACKOFF_MAX": "0.05",
        "OMNIHUB_READ_TIMEOUT": "2",
        "OMNIHUB_CONNECT_TIMEOUT": "2",
        "OMNIHUB_DISABLE_PROGRESS": "1",
        "HF_ENDPOINT": server.url + "/hf",
    }.items():
        monkeypatch.setenv(name, value)
    return Env(home=home, server=server, base=server.url + "/zoo")


def fetch_under_file_size_limit(model_json: str, limit: int, *, setup: str = "") -> dict[str, Any]:
    """``fetch`` the one model of ``model_json`` in a child whose files may not pass ``limit``.

    ``RLIMIT_FSIZE`` makes the kernel refuse writes past ``limit`` (EFBIG, "File too
    large"): a real full-disk-like failure. ``setup`` runs first (e.g. module tuning).
    Returns ``{"error": class name, "message": text}`` of the DownloadError raised.
    """
    code = f"""
import json, resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
{setup}
from omnihub.catalog import catalog_from_json
from omnihub.hub import fetch
from omnihub.errors import DownloadError
(model,) = catalog_from_json({model_json!r}).models
try:
    fetch(model)
except DownloadError as exc:
    print(json.dumps({{"error": type(exc).__name__, "message": str(exc)}}))
"""
    return run_python(code)
