"""What the benchmarks work on: served test files, synthetic specs, catalogue entries.

Everything is written under ``benchmarks/_work`` (gitignored) or a temporary directory made
there, never elsewhere. Test files are random bytes (incompressible) with their sha256 kept
beside them, so a second run reuses them instead of writing gigabytes again.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "FRAMEWORK_DIR",
    "REPO",
    "WORK",
    "WWW",
    "TestFile",
    "Unavailable",
    "child_env",
    "compiler_command",
    "entry_json",
    "regular_python",
    "scratch_dir",
    "test_file",
    "warm_memory",
    "write_raw_model_spec",
    "write_synthetic_spec",
]

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "_work"
WWW = WORK / "www"
#: The framework (cache and URL sub-directory) the download benchmarks use.
FRAMEWORK_DIR = "onnx"
_MiB = 1 << 20


class Unavailable(RuntimeError):
    """The omnihub part a benchmark measures does not exist (yet); ours is n/a."""


class TestFile:
    """A random file served at ``<base>/<FRAMEWORK_DIR>/<name>``, with its sha256."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str, size: int, sha256: str) -> None:
        self.name = name
        self.size = size
        self.sha256 = sha256

    @property
    def path(self) -> Path:
        """Where nginx serves it from."""
        return WWW / FRAMEWORK_DIR / self.name


def test_file(mib: int) -> TestFile:
    """Create (or reuse) a random ``mib`` MiB file under benchmarks/_work/www."""
    name = f"bench-{mib}m.bin"
    path = WWW / FRAMEWORK_DIR / name
    sidecar = path.with_name(name + ".sha256")
    size = mib * _MiB
    if path.is_file() and sidecar.is_file() and path.stat().st_size == size:
        return TestFile(name, size, sidecar.read_text(encoding="ascii").strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    partial = path.with_name(name + ".partial")
    with partial.open("wb") as out:
        for _ in range(mib):
            chunk = os.urandom(_MiB)
            digest.update(chunk)
            out.write(chunk)
    partial.replace(path)
    sidecar.write_text(digest.hexdigest() + "\n", encoding="ascii")
    return TestFile(name, size, digest.hexdigest())


def scratch_dir(prefix: str) -> Path:
    """A fresh temporary directory under benchmarks/_work/tmp (same disk as the served files)."""
    base = WORK / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def remove(path: Path) -> None:
    """Delete a scratch directory, ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)


def warm_memory(directory: Path, size: int) -> None:
    """Write ``size`` bytes to a scratch file and delete it, just before a timed method runs.

    On this machine (a Firecracker VM with virtio-balloon free page reporting) memory the
    guest frees is handed back to the host after about 2 s, and the next first touch of it
    costs ~2.3 ms per MiB: writing 256 MiB into fresh page cache took 0.60-0.68 s instead of
    0.05 s after a 2 s pause (and 0.05 s after 0 or 0.5 s). A download timed after such a
    pause pays that at random, whichever client it is; this step makes every method start
    with as much just-freed, host-backed memory as it will write, so that the rounds compare
    the clients, not the hypervisor. Dirty pages deleted before writeback never reach disk.
    """
    block = b"\0" * (1 << 20)
    scratch = directory / "warm-memory.tmp"
    with scratch.open("wb") as fh:
        for _ in range(-(-size // len(block))):
            fh.write(block)
    scratch.unlink()


def entry_json(test: TestFile, base_url: str) -> str:
    """A raw-format catalogue entry for ``test``, as JSON for a child process.

    The child builds :class:`omnihub.catalog.ModelEntry` from it; keeping the entry as plain
    JSON means the suite itself never depends on the runtime being importable.
    """
    stem = test.name.removesuffix(".bin").replace("-", "_")
    data: dict[str, Any] = {
        "name": stem,
        "python_name": stem,
        "namespace": "BenchModels",
        "package": "bench",
        "framework": FRAMEWORK_DIR,
        "model_type": "COMP_GRAPH",
        "format": "raw",
        "documentation": f"{test.size} random bytes for the download benchmarks.",
        "file": test.name,
        "url": f"{base_url}/{FRAMEWORK_DIR}/{test.name}",
        "sha256": test.sha256,
        "size": test.size,
    }
    return json.dumps(data, sort_keys=True)


def compiler_command() -> list[str]:
    """The ``omnihub-compile`` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "omnihub-compile"
    try:
        importlib.import_module("omnihub_compiler.cli")
    except ImportError as exc:
        raise Unavailable(f"omnihub_compiler.cli is not importable ({exc})") from exc
    if not script.exists():
        raise Unavailable(f"{script} does not exist (is the project installed?)")
    return [str(script)]


def write_synthetic_spec(directory: Path, n_models: int, n_namespaces: int) -> None:
    """Write a spec of ``n_models`` models over ``n_namespaces`` namespaces into ``directory``.

    The one call site of the compiler's synthetic-spec generator: the compiler owns the DSL,
    so the spec it can compile is the compiler's to write.
    """
    try:
        synthetic = importlib.import_module("omnihub_compiler.synthetic")
    except ImportError as exc:
        raise Unavailable(f"omnihub_compiler.synthetic is not importable ({exc})") from exc
    generate = getattr(synthetic, "write_synthetic_spec", None)
    if generate is None:
        raise Unavailable("omnihub_compiler.synthetic has no write_synthetic_spec")
    directory.mkdir(parents=True, exist_ok=True)
    generate(directory, n_models, n_namespaces)


def regular_python() -> Path:
    """An interpreter that finds omnihub the way a regular (non-editable) install does.

    The development venv has omnihub installed in editable mode: setuptools adds an import
    hook (``__editable___omnihub_*_finder``, run from a ``.pth`` file at every interpreter
    start, plus ``distutils-precedence.pth``) that costs ~13 ms of CPU per interpreter here --
    nothing a user's regular install pays, and it matters when 16 interpreters start at once
    on 2 cores. This venv (``_work/regular-venv``, ``python -m venv --without-pip``) has one
    ``.pth`` file naming ``runtime/`` and the development venv's site-packages as plain path
    entries: imports resolve through ordinary directories exactly as from site-packages, and
    always see the current source. Falls back to this interpreter if the venv cannot be made.
    """
    import subprocess
    import sysconfig

    venv = WORK / "regular-venv"
    python = venv / "bin" / "python"
    deps = sysconfig.get_paths()["purelib"]
    lines = f"{REPO / 'runtime'}\n{deps}\n"
    try:
        if not python.exists():
            subprocess.run(
                [sys.executable, "-m", "venv", "--without-pip", str(venv)],
                check=True,
                capture_output=True,
                timeout=120,
            )
        site = sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"]
        pth = Path(site) / "omnihub-bench.pth"
        if not pth.exists() or pth.read_text(encoding="utf-8") != lines:
            pth.write_text(lines, encoding="utf-8")
        probe = subprocess.run(
            [
                str(python),
                "-c",
                "import omnihub, sys; print(omnihub.__file__, "
                "any('__editable__' in m for m in sys.modules))",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.split()
        if probe != [str(REPO / "runtime" / "omnihub" / "__init__.py"), "False"]:
            return Path(sys.executable)
    except (OSError, subprocess.SubprocessError):
        return Path(sys.executable)
    return python


def child_env(**omnihub: str) -> dict[str, str]:
    """This process's environment without any OMNIHUB_* variable, plus ``omnihub``'s.

    Progress bars are disabled (they would measure the terminal, not the download), and
    PYTHONDONTWRITEBYTECODE is dropped: the benchmarks that want it set it themselves.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OMNIHUB_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["OMNIHUB_DISABLE_PROGRESS"] = "1"
    env.update(omnihub)
    return env


_RAW_SPEC = '''\
"""Raw models for the cache-hit benchmark (written by benchmarks/workload.py).

{fillers} filler models that are never fetched, then the one that is: a file served by the
benchmarks' nginx. It sorts last, so a lookup that scans the catalogue pays for all of them.
"""

from omnihub_compiler.dsl import DEFAULT_OMNIHUB_URL, Format, Framework, NamespaceBuilder
from omnihub_compiler.dsl import framework_namespace


@framework_namespace("BenchModels", package={package!r})
def bench(ns: NamespaceBuilder) -> None:
    for i in range({fillers}):
        ns.model(
            f"filler_{{i:06d}}",
            documentation="A filler model: never fetched.",
            url=f"{{DEFAULT_OMNIHUB_URL}}/{framework}/filler_{{i:06d}}.bin",
            framework=Framework({framework!r}),
            format=Format.RAW,
        )
    ns.model(
        {name!r},
        documentation="A random file served by the benchmarks' nginx.",
        url={url!r},
        framework=Framework({framework!r}),
        format=Format.RAW,
        sha256={sha256!r},
        size={size!r},
    )
'''


def write_raw_model_spec(
    directory: Path, test: TestFile, *, fillers: int = 0, package: str = "bench"
) -> None:
    """Write a spec declaring ``test`` as a raw model of ``omnihub_generated.<package>``.

    ``fillers`` more raw models come first (never fetched), so the namespace has realistic
    size. The URLs are under the default zoo, so the runtime fetches from
    ``$OMNIHUB_URL/<framework>/<file>`` -- the benchmarks point OMNIHUB_URL at nginx.
    """
    from omnihub._enums import DEFAULT_OMNIHUB_URL

    directory.mkdir(parents=True, exist_ok=True)
    text = _RAW_SPEC.format(
        package=package,
        fillers=fillers,
        name="zz_" + test.name.removesuffix(".bin").replace("-", "_"),
        url=f"{DEFAULT_OMNIHUB_URL}/{FRAMEWORK_DIR}/{test.name}",
        framework=FRAMEWORK_DIR,
        sha256=test.sha256,
        size=test.size,
    )
    (directory / f"{package}.py").write_text(text, encoding="utf-8")
