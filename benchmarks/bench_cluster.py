"""Issue 17's benchmark lines: ``omnihub mirror`` into S3, and 32 nodes behind the nginx cache.

Run from the repository root (writes its section of docs/benchmarks.md)::

    .venv/bin/python benchmarks/bench_cluster.py            # 512 MiB mirror, 128 MiB nodes
    .venv/bin/python benchmarks/bench_cluster.py --quick    # 64 MiB / 32 MiB, 3 rounds

- ``mirror_s3_vs_s3fs_put``: ``omnihub mirror s3://bench/<round> NAME`` of a cached model
  into moto's S3 server on loopback (fetch = cache hit, sha256, upload, ETag verification),
  process wall time, against ``s3fs.S3FileSystem().put_file`` of the same file in a fresh
  process (what ``aws s3 cp`` does). Target: ours' throughput >= 0.8x the baseline's.
- ``cluster_32_nodes_nginx``: 32 processes with 32 separate homes run ``omnihub download``
  at once against docs/cluster.md's nginx cache (cold), in front of an origin that paces its
  responses like a WAN (:class:`benchmarks.servers.PacedOrigin`: ``WAN``, 20 MiB/s per
  connection and 20 MiB/s in all), the nodes with omnihub's defaults; wall to the last
  exit, against one node alone through a cold cache. Target (issue 17): ratio <= 1.5, and
  the origin sent the file's bytes once.
- ``cluster_32_nodes_cold_cache_cost``: measured in the same rounds, 32 nodes through a warm
  cache (the fan-out alone: on one host, 32 x the file received, hashed, written and fsynced
  by processes sharing its cores -- work a real cluster does on 32 machines at once); per
  round cold - warm is what the cold cache adds. Target: at most half of one node's download.
- Both again (``SETUPS``) with one connection per node (``_one_connection``) and
  with the WAN the line was first measured with (``_per_connection_limit_only``: no total
  limit, so one node's parallel segments are not origin-bound).

The mirror's rounds alternate which side goes first, the nodes' rotate the three runs;
medians with every sample in the notes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` and ``tests`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Result, Target, format_line, median
from benchmarks.servers import PacedOrigin, ensure_tools
from benchmarks.workload import REPO, TestFile, remove, scratch_dir, test_file

__all__ = ["main", "mirror_s3", "nodes_behind_nginx"]

_MiB = 1 << 20
NODES = 32
_START = "<!-- benchmarks:cluster:start -->"
_END = "<!-- benchmarks:cluster:end -->"
_PUT = "import s3fs, sys; s3fs.S3FileSystem().put_file(sys.argv[1], sys.argv[2])"
#: A node: import what a download needs, print "ready", wait for the gate (a line on stdin),
#: then run ``omnihub download NAME`` -- interpreter start-up is not what the cache changes,
#: and 32 of them at once on a 2-core machine would be measured instead of the downloads.
_NODE = (
    "import sys, requests, omnihub.hub, omnihub.cli._download, omnihub.search;"
    "from omnihub.cli._main import main; omnihub.search.list_models();"
    "print('ready', flush=True); sys.stdin.readline(); sys.exit(main(['download', sys.argv[1]]))"
)


def _catalog(site: Path, test: TestFile) -> str:
    """Install a one-model catalogue ``clusterbench`` for ``test``; return its qualified name."""
    from omnihub._enums import Format, Framework, ModelType
    from omnihub.catalog import Catalog, ModelEntry, catalog_to_json

    model = ModelEntry(
        name="big",
        python_name="big",
        namespace="ClusterBench",
        package="clusterbench",
        framework=Framework.ONNX,
        model_type=ModelType.COMP_GRAPH,
        format=Format.RAW,
        documentation="random bytes for the cluster benchmarks",
        file=test.name,
        sha256=test.sha256,
        size=test.size,
    )
    package = site / "omnihub_generated" / "clusterbench"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    catalog = Catalog(namespace="ClusterBench", package="clusterbench", models=(model,))
    (package / "_catalog.json").write_text(catalog_to_json(catalog))
    return "clusterbench.big"


def _env(site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIHUB_", "HF_", "AWS_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return {**env, "PYTHONPATH": str(site), "OMNIHUB_DISABLE_PROGRESS": "1", **extra}


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=900)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed: {done.stdout[-300:]}{done.stderr[-300:]}")
    return wall


def _interleave(
    rounds: int, ours: Callable[[int], float], base: Callable[[int], float]
) -> tuple[list[float], list[float]]:
    ours_s: list[float] = []
    base_s: list[float] = []
    for n in range(rounds):
        for side in ("ours", "base") if n % 2 == 0 else ("base", "ours"):
            subprocess.run(["sync"], check=False)
            (ours_s if side == "ours" else base_s).append((ours if side == "ours" else base)(n))
            print(
                f"  round {n} {side}: {(ours_s if side == 'ours' else base_s)[-1]:.2f}s",
                file=sys.stderr,
            )
    return ours_s, base_s


def _samples(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def mirror_s3(mib: int, rounds: int) -> Result:
    """``omnihub mirror`` into moto's S3 server against s3fs ``put_file`` of the same file."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    test = test_file(mib)
    work = scratch_dir("cluster-mirror-")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        site, home = work / "site", work / "home"
        name = _catalog(site, test)
        aws = {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": endpoint,
        }
        env = _env(site, OMNIHUB_HOME=str(home), OMNIHUB_URL=test.path.parents[1].as_uri(), **aws)
        omnihub = [sys.executable, "-m", "omnihub"]
        _timed([*omnihub, "download", name], env)  # the model is in the local cache
        import s3fs

        fs = s3fs.S3FileSystem(
            key="bench", secret="bench-secret", client_kwargs={"endpoint_url": endpoint}
        )
        fs.mkdir("bench")
        etags: list[str] = []

        def ours(n: int) -> float:
            wall = _timed([*omnihub, "mirror", f"s3://bench/ours{n}", name, "--json"], env)
            etags.append(fs.info(f"bench/ours{n}/onnx/{test.name}")["ETag"])
            fs.rm(f"bench/ours{n}", recursive=True)
            return wall

        def base(n: int) -> float:
            wall = _timed([sys.executable, "-c", _PUT, str(test.path), f"bench/base{n}/x"], env)
            etags.append(fs.info(f"bench/base{n}/x")["ETag"])
            fs.rm(f"bench/base{n}", recursive=True)
            return wall

        ours_s, base_s = _interleave(rounds, ours, base)
        _timed([*omnihub, "mirror", "s3://bench/final", name], env)
        check = subprocess.run(
            [*omnihub, "mirror", "--check", "s3://bench/final", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        checked = check.returncode == 0 and json.loads(check.stdout)["ok"] == 1
    finally:
        server.stop()
        remove(work)
    rate = mib / median(ours_s), mib / median(base_s)
    return Result(
        "mirror_s3_vs_s3fs_put",
        rate[0],
        rate[1],
        Target("ratio", ">=", 0.8),
        "MiB/s",
        checks={"same_etag": len(set(etags)) == 1, "mirror_check_ok": checked},
        note=(
            f"{mib} MiB into moto {_moto_version()} on loopback, process wall time, median of "
            f"{rounds} interleaved (ours {_samples(ours_s)} s: cache hit, sha256, upload, ETag "
            f"check, manifest; s3fs put_file {_samples(base_s)} s); every object's ETag the same "
            f"({etags[0] if etags else 'n/a'}); `mirror --check` afterwards: {checked}"
        ),
    )


def _moto_version() -> str:
    import moto

    return str(moto.__version__)


@dataclass(frozen=True)
class Wan:
    """The emulated WAN between the cache and the origin: bytes/s per connection, and for
    every connection together (the link; None: no limit beyond the connections')."""

    per_connection: int
    link: int | None

    def describe(self) -> str:
        """``20 MiB/s per connection, 20 MiB/s in all``."""
        total = "no total limit" if self.link is None else f"{self.link / _MiB:g} MiB/s in all"
        return f"{self.per_connection / _MiB:g} MiB/s per connection, {total}"


#: The benchmark's WAN: a CDN's per-connection rate, and the same rate for the whole link, so
#: that one node is origin-bound however many connections it opens (see docs/cluster.md).
WAN = Wan(20 * _MiB, 20 * _MiB)
#: The definition the line was first measured with: only the per-connection limit, so one
#: node's 8 parallel segments (omnihub switches below 32 MiB/s) reach 8 x that rate.
WAN_PER_CONNECTION_ONLY = Wan(20 * _MiB, None)


def _spread(values: list[float]) -> str:
    return f"{median(values):.2f} s [{min(values):.2f}-{max(values):.2f}] ({_samples(values)})"


@dataclass(frozen=True)
class NodesSetup:
    """One configuration of the nodes benchmark: the WAN, the nodes' ``OMNIHUB_CONNECTIONS``
    (None: omnihub's default) and the suffix of its lines' names."""

    wan: Wan
    connections: int | None
    suffix: str

    def describe(self) -> str:
        """The setting as the notes state it."""
        nodes = (
            "the nodes with omnihub's default connections (8 parallel segments once a stream "
            "runs below 32 MiB/s for 2 s)"
            if self.connections is None
            else f"the nodes with OMNIHUB_CONNECTIONS={self.connections}"
        )
        return f"origin {self.wan.describe()} (benchmarks.servers.PacedOrigin); {nodes}"


#: The issue's line: a site whose link is the limit, nodes with omnihub's defaults (what
#: docs/cluster.md recommends); then the same WAN with one connection per node (so nginx
#: fetches the pieces in order), and the WAN the line was first measured with.
SETUPS = (
    NodesSetup(WAN, None, ""),
    NodesSetup(WAN, 1, "_one_connection"),
    NodesSetup(WAN_PER_CONNECTION_ONLY, None, "_per_connection_limit_only"),
)


def nodes_behind_nginx(mib: int, rounds: int, setup: NodesSetup) -> list[Result]:
    """32 nodes through docs/cluster.md's nginx cache, cold and warm, against one node.

    Every round runs the three, in an order that rotates from round to round: 32 nodes
    through a cold cache, one node through a cold cache, 32 nodes through a warm cache (filled
    by one untimed GET first). Two lines: the issue's (cold 32 / one), and what the cold cache
    costs beyond this host's fan-out (per round cold - warm, against one node's download).
    """
    from tests.cluster.proxy import CachingProxy

    tools = ensure_tools(["nginx"])
    test = test_file(mib)
    work = scratch_dir("cluster-nodes-")
    root = work / "origin"
    (root / "zoo" / "onnx").mkdir(parents=True)
    (root / "zoo" / "onnx" / test.name).symlink_to(test.path)
    uri = f"/zoo/onnx/{test.name}"
    site = work / "site"
    name = _catalog(site, test)
    wan, suffix = setup.wan, setup.suffix
    extra = {} if setup.connections is None else {"OMNIHUB_CONNECTIONS": str(setup.connections)}
    origin = PacedOrigin(root, wan.per_connection, wan.link).start()
    served: dict[str, list[int]] = {"cold": [], "one": [], "warm": []}
    walls: dict[str, list[float]] = {"cold": [], "one": [], "warm": []}
    try:

        def run(kind: str, n: int) -> float:
            count = 1 if kind == "one" else NODES
            tmp = work / f"{kind}{n}"
            proxy = CachingProxy(tools["nginx"], origin.url, tmp / "proxy")
            proxy.start()
            try:
                if kind == "warm":  # fill the cache (not timed)
                    with requests.get(f"{proxy.url}{uri}", stream=True, timeout=600) as got:
                        got.raise_for_status()
                        for _ in got.iter_content(_MiB):
                            pass
                mark = len(origin.entries())
                homes = [tmp / f"node{i}" for i in range(count)]
                wall = _release_nodes(
                    name, homes, _env(site, OMNIHUB_URL=f"{proxy.url}/zoo", **extra)
                )
            finally:
                proxy.stop()
            served[kind].append(sum(e.body_bytes for e in origin.entries()[mark:] if e.uri == uri))
            remove(tmp)
            return wall

        kinds = ("cold", "one", "warm")
        for n in range(rounds):
            for kind in kinds[n % 3 :] + kinds[: n % 3]:
                subprocess.run(["sync"], check=False)
                walls[kind].append(run(kind, n))
                print(f"  round {n} {kind}: {walls[kind][-1]:.2f}s", file=sys.stderr)
    finally:
        origin.stop()
        remove(work)
    cold, one, warm = walls["cold"], walls["one"], walls["warm"]
    added = [c - w for c, w in zip(cold, warm, strict=True)]
    origin_1x = all(b == test.size for b in served["cold"] + served["one"])
    bytes_note = (
        "origin bytes per cold run: "
        + "/".join(f"{b / test.size:.2f}x" for b in served["cold"] + served["one"])
        + f"; per warm run: {'/'.join(str(b) for b in served['warm'])}"
    )
    setting = (
        f"{mib} MiB; {setup.describe()}; docs/cluster.md's "
        f"nginx block as the cache, fresh for every run; {NODES} processes with separate homes "
        f"import omnihub, then run `omnihub download` when released together; wall from the "
        f"release to the last exit; {rounds} rounds, the order rotating; median [min-max] "
        f"(samples)"
    )
    return [
        Result(
            f"cluster_32_nodes_nginx{suffix}",
            median(cold),
            median(one),
            Target("ratio", "<=", 1.5),
            "s",
            checks={"origin_bytes_1x": origin_1x},
            note=(
                f"{setting}: {NODES} nodes, cold cache {_spread(cold)}; one node, cold cache "
                f"{_spread(one)}; {bytes_note}"
            ),
        ),
        Result(
            f"cluster_32_nodes_cold_cache_cost{suffix}",
            median(added),
            median(one),
            Target("ratio", "<=", 0.5),
            "s",
            checks={"origin_bytes_1x": origin_1x, "warm_no_origin": not any(served["warm"])},
            note=(
                f"{setting}: what the cold cache adds to the {NODES}-node wall beyond this host's "
                f"fan-out, per round cold - warm {_spread(added)}, against one node's download "
                f"{_spread(one)}; {NODES} nodes, warm cache (the fan-out alone: {NODES} x {mib} "
                f"MiB received, hashed, written and fsynced by processes sharing this host's "
                f"{os.cpu_count()} cores) {_spread(warm)}; cold {_spread(cold)}; {bytes_note}"
            ),
        ),
    ]


def _release_nodes(name: str, homes: list[Path], env: dict[str, str]) -> float:
    """Start one node per home, wait until all are ready, release them; wall to the last exit."""
    nodes = [
        subprocess.Popen(
            [sys.executable, "-c", _NODE, name],
            env={**env, "OMNIHUB_HOME": str(home)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for home in homes
    ]
    try:
        for node in nodes:
            assert node.stdout is not None
            if node.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a node did not start: {node.communicate()[1][-500:]}")
        start = time.perf_counter()
        for node in nodes:
            assert node.stdin is not None
            node.stdin.write("go\n")
            node.stdin.flush()
        codes = [node.wait(timeout=900) for node in nodes]
        wall = time.perf_counter() - start
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
                node.wait()
    if any(codes):
        failed = next(node for node, code in zip(nodes, codes, strict=True) if code)
        assert failed.stderr is not None
        raise RuntimeError(
            f"{codes.count(0)}/{len(nodes)} nodes succeeded: {failed.stderr.read()[-500:]}"
        )
    return wall


def _machine() -> str:
    load = os.getloadavg()
    return (
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, nproc {os.cpu_count()}, "
        f"load at start {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
    )


def _kept(text: str, names: set[str]) -> tuple[list[str], list[str]]:
    """Table rows and result lines of the existing cluster section for benchmarks not in names."""
    found = re.search(re.escape(_START) + "(.*?)" + re.escape(_END), text, re.DOTALL)
    if found is None:
        return [], []
    rows, lines = [], []
    for line in found.group(1).splitlines():
        if line.startswith("| ") and not line.startswith(("| benchmark", "|---")):
            if line.split(" | ")[0][2:] not in names:
                rows.append(line)
        elif ": ours=" in line and line.split(":")[0] not in names:
            lines.append(line)
    return rows, lines


def write_section(results: list[Result], command: str, machine: str, doc: Path) -> None:
    """Replace (or append) the cluster section of docs/benchmarks.md.

    Lines of benchmarks not run this time (``--only``) are kept from the existing section.
    """
    text = doc.read_text(encoding="utf-8")
    kept_rows, kept_lines = _kept(text, {r.name for r in results})
    rows = [
        f"| {r.name} | {r.ours if r.ours is None else f'{r.ours:.3g}'}{r.unit} "
        f"| {r.baseline if r.baseline is None else f'{r.baseline:.3g}'}{r.unit} "
        f"| {'n/a' if r.ratio is None else f'{r.ratio:.3g}'} | {r.target.describe()} "
        f"| {'PASS' if r.passed else '**FAIL**'} | {machine}. {r.note.replace('|', '/')} |"
        for r in results
    ]
    section = "\n".join(
        [
            _START,
            "## Cluster scale (issue 17)",
            "",
            "`.venv/bin/python benchmarks/bench_cluster.py` (benchmarks/bench_cluster.py; the "
            "set-ups are docs/cluster.md's). Each row names the run that measured it: "
            f"last run `{command}`.",
            "",
            "On one host the 32 nodes' fan-out (32 x the file received, hashed, written and "
            "fsynced by processes sharing its cores) is work a real cluster spreads over 32 "
            "machines, so `cluster_32_nodes_nginx` (the issue's line) measures the host as much "
            "as the cache; `cluster_32_nodes_cold_cache_cost` is what the cold cache adds to the "
            "same 32 nodes against a warm one, in the same rounds. The argument and the set-ups: "
            'docs/cluster.md, section 2, "Measured".',
            "",
            "| benchmark | ours | baseline | ratio | target | result | notes |",
            "|---|---|---|---|---|---|---|",
            *kept_rows,
            *rows,
            "",
            "```",
            *kept_lines,
            *(format_line(r) for r in results),
            "```",
            _END,
        ]
    )
    pattern = re.compile(re.escape(_START) + ".*?" + re.escape(_END), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small files, 3 rounds")
    parser.add_argument("--mirror-mib", type=int, default=None)
    parser.add_argument("--nodes-mib", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--only", choices=("mirror", "nodes"), default=None)
    parser.add_argument(
        "--setup",
        action="append",
        choices=[setup.suffix.lstrip("_") or "main" for setup in SETUPS],
        help="only these node set-ups (repeatable; default: all)",
    )
    parser.add_argument("--no-report", action="store_true", help="do not edit docs/benchmarks.md")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    mirror_mib = args.mirror_mib or (64 if args.quick else 512)
    nodes_mib = args.nodes_mib or (32 if args.quick else 128)
    machine = _machine()
    results = []
    if args.only in (None, "mirror"):
        results.append(mirror_s3(mirror_mib, rounds))
        print(format_line(results[-1]), flush=True)
    if args.only in (None, "nodes"):
        chosen = [
            s
            for s in SETUPS
            if args.setup is None or (s.suffix.lstrip("_") or "main") in args.setup
        ]
        for setup in chosen:
            for result in nodes_behind_nginx(nodes_mib, rounds, setup):
                results.append(result)
                print(format_line(result), flush=True)
    end = os.getloadavg()
    machine += f", at end {end[0]:.2f}/{end[1]:.2f}/{end[2]:.2f}"
    if not args.no_report:
        command = " ".join(["benchmarks/bench_cluster.py", *(argv or sys.argv[1:])])
        write_section(results, command, machine, REPO / "docs" / "benchmarks.md")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
