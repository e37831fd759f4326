"""Target 3: a cache-hit call of a generated function with the raw-file loader.

A spec of raw models is compiled: 10,000 (1,000 quick) of them, the last -- the one measured
-- a 1 MiB file with declared sha256 and size, served by the private nginx and fetched once
by a priming process. Then a fresh process
imports the generated function and calls it many times: ours is the median call, baseline
DL4J's cache hit (``File.exists()`` on the cache path), both measured in that process.
Checks, in the same process: zero socket operations (an audit hook on ``socket.*`` events),
requests and tqdm not imported, no request reaching nginx, and the result is the raw
loader's ``ModelFile``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.harness import Result, Target
from benchmarks.procs import ChildFailed, run_measured
from benchmarks.servers import Nginx
from benchmarks.workload import (
    REPO,
    Unavailable,
    child_env,
    compiler_command,
    remove,
    scratch_dir,
    test_file,
    write_raw_model_spec,
)

__all__ = ["run"]

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
