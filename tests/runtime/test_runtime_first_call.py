"""The first call of a generated function imports no library: neither on a hit nor while waiting.

Issue 5, target 6: when 16 processes ask for one uncached model at once, 15 of them wait for
the one that downloads, and on a small machine every millisecond of CPU they spend comes out
of that download. So a waiter's whole first call -- catalogue entry, config, cache check, lock,
wait, record, raw ``ModelFile`` -- must not import attrs, cattrs, filelock, requests, or even
``typing``/``logging``/``threading``. Each case runs in a fresh interpreter and compares
``sys.modules`` before and after the call.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.runtime.helpers import REPO, child_env

#: What the first call must never import: the network and array stack (issue 14 relaxed the
#: old list, which also forbade attrs/cattrs/typing: every real loader imports them anyway).
HEAVY = ("requests", "urllib3", "http.client", "ssl", "numpy", "onnx", "onnxruntime", "tqdm")

_DATA = b"raw model bytes\n" * 1000
_SPEC = '''\
"""One raw model, for the first-call lightness tests."""

from omnihub_compiler.dsl import DEFAULT_OMNIHUB_URL, Format, Framework, NamespaceBuilder
from omnihub_compiler.dsl import framework_namespace


@framework_namespace("LightModels", package="light")
def light(ns: NamespaceBuilder) -> None:
    ns.model(
        "tiny",
        documentation="A raw file.",
        url=f"{{DEFAULT_OMNIHUB_URL}}/onnx/tiny.bin",
        framework=Framework.ONNX,
        format=Format.RAW,
        sha256={sha256!r},
        size={size!r},
    )
'''

# Runs in the child: import the generated package, then call its function once and report
# what the call imported. With a lock held elsewhere, an audit hook says when the child
# starts its blocking wait, so the parent knows when to publish.
_CHILD = """
import fcntl, json, sys
sys.path.insert(0, {out!r})
def _audit(event, args):
    if event == "fcntl.flock" and args[1] == fcntl.LOCK_SH:
        print("waiting", flush=True)
sys.addaudithook(_audit)
import omnihub_generated.light as light
before = set(sys.modules)
result = light.tiny()
new = set(sys.modules) - before
print(json.dumps({{
    "type": type(result).__module__ + "." + type(result).__qualname__,
    "path": str(result.path),
    "sha256": result.entry.sha256,
    "heavy": sorted(m for m in {heavy!r} if m in new),
}}), flush=True)
"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compiled one-model namespace ``omnihub_generated.light``; returns the output dir."""
    root = tmp_path_factory.mktemp("light")
    spec = root / "spec"
    spec.mkdir()
    text = _SPEC.format(sha256=hashlib.sha256(_DATA).hexdigest(), size=len(_DATA))
    (spec / "light.py").write_text(text, encoding="utf-8")
    out = root / "out"
    subprocess.run(
        [sys.executable, "-m", "omnihub_compiler", str(spec), "-o", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return out


def _child(out: Path, home: Path) -> subprocess.Popen[str]:
    env = child_env()
    env.pop("PYTHONPATH", None)
    env["OMNIHUB_HOME"] = str(home)
    env["OMNIHUB_URL"] = "http://127.0.0.1:9/unreachable"  # any download attempt fails
    code = _CHILD.format(out=str(out), heavy=HEAVY)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _publish(target: Path) -> None:
    """Put a verified file and its record in place, as the downloading process does."""
    from omnihub.cache import Record, write_record

    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(_DATA)
    digest = hashlib.sha256(_DATA).hexdigest()
    write_record(target, Record(len(_DATA), target.stat().st_mtime_ns, digest))


def _report(child: subprocess.Popen[str]) -> dict[str, object]:
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    report: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return report


def test_a_cache_hit_imports_nothing_heavy(compiled: Path, tmp_path: Path) -> None:
    target = tmp_path / "home" / "onnx" / "tiny.bin"
    _publish(target)
    report = _report(_child(compiled, tmp_path / "home"))
    assert report == {
        "type": "omnihub.model_file.ModelFile",
        "path": str(target),
        "sha256": hashlib.sha256(_DATA).hexdigest(),
        "heavy": [],
    }


def test_the_check_sees_a_heavy_import(compiled: Path, tmp_path: Path) -> None:
    """The harness itself works: a loader that imports logging is caught."""
    target = tmp_path / "home" / "onnx" / "tiny.bin"
    _publish(target)
    env_code = _CHILD.format(out=str(compiled), heavy=HEAVY).replace(
        "result = light.tiny()", "result = light.tiny(); import tqdm"
    )
    env = child_env()
    env.pop("PYTHONPATH", None)
    env["OMNIHUB_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(env_code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "tqdm" in json.loads(done.stdout.strip().splitlines()[-1])["heavy"]
