"""Fixtures: a throw-away installed catalogue, zoo and cache, and a subprocess CLI runner."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from omnihub._enums import Framework
from omnihub.catalog import ModelEntry

from .zoo import entry, pinned, write_catalog, write_zoo_file


@attrs.frozen
class Cli:
    """Runs ``python -m omnihub`` in a clean environment rooted in a temporary directory."""

    root: Path
    env: dict[str, str]

    @property
    def site(self) -> Path:
        """The directory on the subprocess's PYTHONPATH holding omnihub_generated/."""
        return self.root / "site"

    @property
    def zoo(self) -> Path:
        """The file:// zoo OMNIHUB_URL points at."""
        return self.root / "zoo"

    @property
    def home(self) -> Path:
        """OMNIHUB_HOME."""
        return self.root / "home"

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``omnihub ARGS`` and return the finished process (never raises on failure)."""
        return subprocess.run(
            [sys.executable, "-m", "omnihub", *args],
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=self.root,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A CLI runner with OMNIHUB_HOME, a file:// OMNIHUB_URL and PYTHONPATH all in tmp_path."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OMNIHUB_", "HF_", "PYTHON"))
    }
    runner = Cli(tmp_path, env)
    for directory in (runner.site, runner.zoo, runner.home):
        directory.mkdir()
    env.update(
        PYTHONPATH=str(runner.site),
        OMNIHUB_HOME=str(runner.home),
        OMNIHUB_URL=runner.zoo.as_uri(),
        PYTHONIOENCODING="utf-8",
    )
    return runner


@attrs.frozen
class Zoo:
    """Models installed in a Cli's catalogue and served by its file:// zoo."""

    cli: Cli
    models: dict[str, ModelEntry]  # python_name -> entry
    contents: dict[str, bytes]  # python_name -> file content

    def cached(self, python_name: str) -> Path:
        """Where the model is cached under OMNIHUB_HOME."""
        model = self.models[python_name]
        return self.cli.home / model.framework.value / model.file


@pytest.fixture
def zoo(cli: Cli) -> Zoo:
    """Three pinned models and one unpinned (trust on first use), all served by the zoo."""
    contents = {
        "alpha": b"alpha model " * 3000,
        "beta": bytes(range(256)) * 40,
        "gamma": b"gamma\n" * 7,
        "delta": b"unpinned delta",
    }
    models = {
        "alpha": pinned(entry("alpha", "zoo", file="a/alpha.bin", tags=("t1",)), contents["alpha"]),
        "beta": pinned(
            entry("beta", "zoo", framework=Framework.DL4J, file="beta.zip"), contents["beta"]
        ),
        "gamma": pinned(
            entry("gamma", "zoo", framework=Framework.SAMEDIFF, file="gamma.fb"),
            contents["gamma"],
        ),
        "delta": entry("delta", "zoo", file="delta.bin"),
    }
    for name, model in models.items():
        write_zoo_file(cli.zoo, model, contents[name])
    write_catalog(cli.site, "zoo", models.values())
    return Zoo(cli, models, contents)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_zoo(cli: Cli) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving the Cli's zoo directory; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(cli.zoo))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
