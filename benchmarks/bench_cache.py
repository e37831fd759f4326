"""Cache hits: a generated function's call when its model is cached.

``cache_hit_call`` (issue 5), with the raw-file loader:

A spec of raw models is compiled: 10,000 (1,000 quick) of them, the last -- the one measured
-- a 1 MiB file with declared sha256 and size, served by the private nginx and fetched once
by a priming process. Then a fresh process
imports the generated function and calls it many times: ours is the median call, baseline
DL4J's cache hit (``File.exists()`` on the cache path), both measured in that process.
Checks, in the same process: zero socket operations (an audit hook on ``socket.*`` events),
requests and tqdm not imported, no request reaching nginx, and the result is the raw
loader's ``ModelFile``.

``loader_hit_samediff`` / ``loader_hit_dl4j`` (issue 14): the largest SameDiff and DL4J
model of ../shared/data, compiled into a spec with its sha256 and size, served by nginx and
fetched once; then, in a fresh process, the generated function (cache hit, record check,
loader) against the loader's own parse of the cached file, one call of each in turn. Target:
at most 1.1x.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

from benchmarks.convert_models import shared_models
from benchmarks.harness import Result, Target
from benchmarks.procs import ChildFailed, run_measured
from benchmarks.servers import Nginx
from benchmarks.workload import (
    REPO,
    WWW,
    Unavailable,
    child_env,
    compiler_command,
    remove,
    scratch_dir,
    test_file,
    write_raw_model_spec,
)

__all__ = ["run", "run_loaders"]

_RAW_TYPE = "omnihub.model_file.ModelFile"
_CHILD = REPO / "benchmarks" / "child.py"


def _served_model(out: Path, file: str) -> dict[str, object]:
    """The catalogue entry (as JSON) of the model whose file is ``file``."""
    catalogs = sorted((out / "omnihub_generated").glob("*/_catalog.json"))
    if not catalogs:
        raise Unavailable(f"no _catalog.json under {out}")
    for model in json.loads(catalogs[0].read_text(encoding="utf-8"))["models"]:
        if model["file"] == file:
            found: dict[str, object] = model
            return found
    raise Unavailable(f"{catalogs[0]} lists no model with file {file!r}")


def _measure(
    nginx: Nginx, work: Path, repetitions: int, fillers: int
) -> tuple[dict[str, object], int, str]:
    spec, out, home = work / "spec", work / "out", work / "home"
    test = test_file(1)
    write_raw_model_spec(spec, test, fillers=fillers)
    run_measured([*compiler_command(), spec, "-o", out], timeout=120)
    model = _served_model(out, test.name)
    package = str(model["package"])
    function = str(model["python_name"])
    env = child_env(OMNIHUB_HOME=str(home), OMNIHUB_URL=nginx.url("full"))
    env["PYTHONPATH"] = str(out)
    prime = f"import omnihub_generated.{package} as m; m.{function}()"
    run_measured([sys.executable, "-c", prime], env, timeout=60)
    requests_before = len(nginx.entries())
    measured = run_measured(
        [sys.executable, _CHILD, "call", package, function, str(repetitions)], env, timeout=120
    )
    requests_during = len(nginx.entries()) - requests_before
    report: dict[str, object] = json.loads(measured.stdout)
    return report, requests_during, f"{package}.{function}"


def run(nginx: Nginx | None, quick: bool) -> list[Result]:
    """cache_hit_call."""
    repetitions = 1000 if quick else 10_000
    fillers = 999 if quick else 9_999
    target = Target("ours", "<=", 1.0, "ms")
    if nginx is None:
        return [Result("cache_hit_call", None, None, target, "ms", note="nginx unavailable")]
    work = scratch_dir("cache-")
    try:
        report, requests_during, function = _measure(nginx, work, repetitions, fillers)
    except (Unavailable, ChildFailed) as exc:
        return [Result("cache_hit_call", None, None, target, "ms", note=f"ours: {exc}")]
    finally:
        remove(work)
    base = report["baseline_median"]
    return [
        Result(
            "cache_hit_call",
            float(str(report["median"])) * 1000,
            None if base is None else float(str(base)) * 1000,
            target,
            "ms",
            checks={
                "zero sockets": report["sockets"] == 0,
                "requests not imported": report["requests_imported"] is False,
                "tqdm not imported": report["tqdm_imported"] is False,
                "no request reached nginx": requests_during == 0,
                "raw loader": report["result_type"] == _RAW_TYPE,
            },
            note=f"{function}(), last of {fillers + 1} models in its namespace: median of "
            f"{repetitions} calls in a fresh process; first call "
            f"{float(str(report['first'])) * 1000:.2f}ms; sockets={report['sockets']}; "
            f"result {report['result_type']}; baseline: os.path.exists(cache path) (DL4J)",
        )
    ]


_LOADER_SPEC = '''\
"""Real models for the loader cache-hit benchmark (written by benchmarks/bench_cache.py)."""

from omnihub_compiler.dsl import DEFAULT_OMNIHUB_URL, ModelType, NamespaceBuilder
from omnihub_compiler.dsl import framework_namespace


@framework_namespace("LoaderBench", package="loaderbench")
def loaderbench(ns: NamespaceBuilder) -> None:
    ns.samediff_model(
        "samediff_model",
        documentation="The largest SameDiff file of ../shared/data.",
        url=f"{{DEFAULT_OMNIHUB_URL}}/samediff/{samediff}",
        sha256={samediff_sha!r},
        size={samediff_size!r},
    )
    ns.dl4j_model(
        "dl4j_model",
        documentation="The largest DL4J ModelSerializer file of ../shared/data.",
        url=f"{{DEFAULT_OMNIHUB_URL}}/dl4j/{dl4j}",
        model_type=ModelType.{dl4j_type},
        sha256={dl4j_sha!r},
        size={dl4j_size!r},
    )
'''
#: line name -> (generated function, the loader's own parse function)
_LOADERS = {
    "loader_hit_samediff": ("samediff_model", "omnihub.loaders.samediff:load_samediff"),
    "loader_hit_dl4j": ("dl4j_model", "omnihub.loaders.dl4j:load_dl4j"),
}


def _dl4j_type(path: Path) -> str:
    """COMP_GRAPH or SEQUENTIAL: what the file's configuration says (the loader checks it)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("configuration.json"))
    return "COMP_GRAPH" if "vertices" in config else "SEQUENTIAL"


def _serve(path: Path, framework: str) -> tuple[str, str, int]:
    """Copy a shared model into nginx's root (benchmarks/_work, gitignored): name, sha, size."""
    target = WWW / framework / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    data = target.read_bytes()
    return path.name, hashlib.sha256(data).hexdigest(), len(data)


def _loader_spec(spec: Path) -> dict[str, str]:
    """Write the spec of the largest shared SameDiff and DL4J models; their file names."""
    models = shared_models()
    samediff = next((p for p in models if p.suffix == ".fb"), None)
    dl4j = next((p for p in models if p.suffix != ".fb"), None)
    if samediff is None or dl4j is None:
        raise Unavailable("../shared/data has no SameDiff or no DL4J model")
    sd_name, sd_sha, sd_size = _serve(samediff, "samediff")
    dl_name, dl_sha, dl_size = _serve(dl4j, "dl4j")
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "loaderbench.py").write_text(
        _LOADER_SPEC.format(
            samediff=sd_name,
            samediff_sha=sd_sha,
            samediff_size=sd_size,
            dl4j=dl_name,
            dl4j_sha=dl_sha,
            dl4j_size=dl_size,
            dl4j_type=_dl4j_type(dl4j),
        ),
        encoding="utf-8",
    )
    return {"loader_hit_samediff": sd_name, "loader_hit_dl4j": dl_name}


def run_loaders(nginx: Nginx | None, quick: bool) -> list[Result]:
    """loader_hit_samediff, loader_hit_dl4j."""
    repetitions = 300 if quick else 2000
    target = Target("ratio", "<=", 1.1)
    if nginx is None:
        return [Result(n, None, None, target, "ms", note="nginx unavailable") for n in _LOADERS]
    work = scratch_dir("loaders-")
    results = []
    try:
        files = _loader_spec(work / "spec")
        out, home = work / "out", work / "home"
        run_measured([*compiler_command(), work / "spec", "-o", out], timeout=120)
        env = child_env(OMNIHUB_HOME=str(home), OMNIHUB_URL=nginx.url("full"))
        env["PYTHONPATH"] = str(out)
        prime = "import omnihub_generated.loaderbench as m; m.samediff_model(); m.dl4j_model()"
        run_measured([sys.executable, "-c", prime], env, timeout=60)
        for name, (function, parser) in _LOADERS.items():
            before = len(nginx.entries())
            measured = run_measured(
                [sys.executable, _CHILD, "loader", "loaderbench", function, parser,
                 str(repetitions)], env, timeout=300,
            )  # fmt: skip
            report = json.loads(measured.stdout)
            results.append(
                Result(
                    name,
                    float(report["median"]) * 1000,
                    float(report["baseline_median"]) * 1000,
                    target,
                    "ms",
                    checks={
                        "zero sockets": report["sockets"] == 0,
                        "no request reached nginx": len(nginx.entries()) == before,
                    },
                    note=f"loaderbench.{function}() on {files[name]} ({report['size']} bytes), "
                    f"returning {report['result_type']}: median of {repetitions} calls in a "
                    f"fresh process, alternating with the loader's own {parser}(entry, path) "
                    "on the cached file (the baseline)",
                )
            )
    except (Unavailable, ChildFailed) as exc:
        return [Result(n, None, None, target, "ms", note=f"ours: {exc}") for n in _LOADERS]
    finally:
        remove(work)
    return results
