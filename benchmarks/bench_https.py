"""Download targets over https: a private nginx with a self-signed certificate on loopback.

Every client trusts that certificate the standard way (``SSL_CERT_FILE`` for omnihub,
``REQUESTS_CA_BUNDLE`` for plain requests, ``--cacert`` for curl, ``--ca-certificate`` for
aria2c). Each figure is the median of ``rounds`` interleaved rounds (every method once per
round, in turn, each after :func:`benchmarks.workload.warm_memory`), printed with its
spread (min..max). Ours always runs in a fresh child
process with its own ``OMNIHUB_HOME``, timed inside the child around ``fetch``.

- single: one large file, ours vs ``curl`` then ``sha256sum`` and vs a requests + hashlib
  loop (write, fsync, like ours); ours' peak RSS (VmHWM).
- small: 1,000 files of 100 KiB fetched by one process; ours vs one ``requests.Session``
  with hashlib (per file); ours' RSS after 100 and after 1,000 files.
- parallel: a ``limit_rate 20m`` location; ours asked for 8 connections
  (``OMNIHUB_CONNECTIONS=8``) vs ``aria2c -x8`` and vs one stream (curl); ours left to decide
  by itself is printed too.
- processes: 16 processes ask for one uncached file at once (released together through a
  :class:`benchmarks.procs.Gate` after their imports), wall to the last finish vs one process.

Run: ``python -m benchmarks.bench_https [--quick] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from benchmarks.procs import Gate, start, wait_measured
from benchmarks.servers import find_tool, free_port, nginx_config
from benchmarks.workload import REPO, child_env, remove, scratch_dir, warm_memory

__all__ = ["asking_wall", "main"]

_MiB = float(1 << 20)

_NGINX_HTTP = """\
access_log off;
keepalive_requests 100000;
server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {tmp}/server.pem;
    ssl_certificate_key {tmp}/server.key;
    location /full/ {{ alias {root}/; }}
    location /limited/ {{ alias {root}/; limit_rate 20m; }}
}}
"""

# Ours, in a child: fetch the given entries (JSON list of [url, file, sha256, size]) into
# OMNIHUB_HOME, report seconds inside the process and VmHWM (peak RSS), and RSS after 100.
_OURS = """
import json, sys, time
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import ModelEntry
from omnihub.hub import fetch
import omnihub.download, requests  # imported before the clock starts, as the baseline does
def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
entries = [ModelEntry(name="m" + str(i), python_name="m" + str(i), namespace="B",
                      package="b", framework=Framework.SAMEDIFF,
                      model_type=ModelType.SAMEDIFF_PIPELINE, format=Format.RAW,
                      documentation="b", file=f, url=u, sha256=s, size=n,
                      repository="url")
           for i, (u, f, s, n) in enumerate(json.loads(sys.argv[1]))]
began = time.monotonic()
rss100 = None
for i, e in enumerate(entries):
    fetch(e)
    if i == 99:
        rss100 = rss("VmRSS")
seconds = time.monotonic() - began
print(json.dumps({"seconds": seconds, "hwm": rss("VmHWM"), "rss": rss("VmRSS"), "rss100": rss100}))
"""

# Plain requests + hashlib, in a child: one Session, each URL streamed to a file, fsynced.
# With a third argument "durable", the same loop made crash-safe the way any cache must be
# (and ours is): a temporary name, fsync, rename into place, fsync of the directory --
# measured beside the baseline so the cost of those guarantees is visible.
_REQUESTS = """
import hashlib, json, os, sys, time
import requests
urls, out = json.loads(sys.argv[1]), sys.argv[2]
durable = sys.argv[3:] == ["durable"]
began = time.monotonic()
dir_fd = os.open(out, os.O_RDONLY)
with requests.Session() as s:
    for i, u in enumerate(urls):
        h = hashlib.sha256()
        name = os.path.join(out, str(i))
        with s.get(u, stream=True) as r, open(name + ".part" if durable else name, "wb") as f:
            r.raise_for_status()
            for chunk in r.iter_content(1 << 20):
                h.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if durable:
            os.replace(name + ".part", name)
            os.fsync(dir_fd)
print(json.dumps({"seconds": time.monotonic() - began}))
"""

# One gated asker of the 16-process target.
_ASKER = """
import json, sys, time
sys.path.insert(0, {benchmarks!r})
from child import wait_at_gate
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import ModelEntry
from omnihub.hub import fetch
# What a fetch imports, before the gate (as bench_cluster's nodes do): the line measures the
# lock and the one download, not 15 first-call imports competing for this host's 2 cores.
import filelock, requests, omnihub.locking, omnihub.cache_admin, omnihub.download
u, f, s, n = json.loads(sys.argv[3])
e = ModelEntry(name="m", python_name="m", namespace="B", package="b",
               framework=Framework.SAMEDIFF, model_type=ModelType.SAMEDIFF_PIPELINE,
               format=Format.RAW, documentation="b", file=f, url=u, sha256=s, size=n,
               repository="url")
woke = wait_at_gate(int(sys.argv[1]), int(sys.argv[2]))
fetch(e)
print(json.dumps({{"finished": time.monotonic()}}))
"""


def asking_wall(released: float, reports: Sequence[Mapping[str, object]]) -> float:
    """Seconds from ``released`` to the last child's own ``finished`` timestamp (both
    CLOCK_MONOTONIC readings: one clock for the machine)."""
    if not reports:
        raise ValueError("no child reported a finish time")
    return max(float(str(r["finished"])) for r in reports) - released


def _spread(values: Sequence[float], unit: str, digits: int = 1) -> str:
    return (
        f"{statistics.median(values):.{digits}f} {unit} "
        f"({min(values):.{digits}f}..{max(values):.{digits}f}, n={len(values)})"
    )


def _ratio(ours: Sequence[float], base: Sequence[float]) -> list[float]:
    return [a / b for a, b in zip(ours, base, strict=True)]


class Server:
    """nginx over https on a free loopback port, serving ``root``; its CA is ``self.ca``."""

    def __init__(self, nginx: Path, root: Path, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.ca = tmp / "server.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(tmp / "server.key"), "-out", str(self.ca)],
            check=True, capture_output=True,
        )  # fmt: skip
        conf = tmp / "nginx.conf"
        conf.write_text(nginx_config(tmp, _NGINX_HTTP.format(tmp=tmp, port=self.port, root=root)))
        self.proc = subprocess.Popen(
            [str(nginx), "-c", str(conf), "-p", str(tmp)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "--cacert", str(self.ca), self.url("full")],
                check=False,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError(f"nginx did not start: {self.proc.communicate()[1]!r}")

    def url(self, kind: str, name: str = "") -> str:
        return f"https://127.0.0.1:{self.port}/{kind}/{name}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _make(path: Path, size: int, seed: int) -> str:
    """A file of ``size`` pseudo-random bytes; returns its sha256."""
    block = hashlib.sha256(str(seed).encode()).digest() * (1 << 15)  # 1 MiB
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        left = size
        while left:
            piece = block[: min(left, len(block))]
            fh.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def _python(code: str, *args: str, env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _timed(cmd: Sequence[str]) -> float:
    began = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True, timeout=1800)
    return time.monotonic() - began


class Bench:
    """Files, server, environments and the four targets."""

    def __init__(self, quick: bool, rounds: int) -> None:
        self.quick, self.rounds = quick, rounds
        nginx = find_tool("nginx")
        if nginx is None or shutil.which("curl") is None or shutil.which("openssl") is None:
            raise SystemExit("needs nginx, curl and openssl (apt-get install nginx curl)")
        self.work = scratch_dir("https-")
        self.root = self.work / "root"
        self.root.mkdir()
        self.big = (256 if quick else 1024) << 20
        self.big_sha = _make(self.root / "big.bin", self.big, 1)
        self.limited = (64 if quick else 256) << 20
        self.limited_sha = _make(self.root / "limited.bin", self.limited, 2)
        self.small = []
        for i in range(1000):
            data = hashlib.sha256(f"s{i}".encode()).digest() * 3200  # 100 KiB
            (self.root / f"s{i}.bin").write_bytes(data)
            self.small.append((f"s{i}.bin", hashlib.sha256(data).hexdigest(), len(data)))
        (self.work / "tmp").mkdir()
        self.server = Server(nginx, self.root, self.work / "tmp")
        base = child_env()
        self.ours_env = {**base, "SSL_CERT_FILE": str(self.server.ca),
                         "OMNIHUB_DISABLE_PROGRESS": "1"}  # fmt: skip
        for name in ("OMNIHUB_CONNECTIONS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            self.ours_env.pop(name, None)
        self.requests_env = {**base, "REQUESTS_CA_BUNDLE": str(self.server.ca)}

    def home(self) -> Path:
        home = self.work / "home"
        remove(home)
        return home

    def ours(self, entries: list[tuple[str, str, str, int]], **env: str) -> dict[str, float]:
        run_env = {**self.ours_env, "OMNIHUB_HOME": str(self.home()), **env}
        return _python(_OURS, json.dumps(entries), env=run_env)

    def rounds_of(self, methods: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(self.rounds):
            for name, method in methods.items():
                warm_memory(self.work, self.big + (64 << 20))  # what a method may write
                out[name].append(method())
        return out

    def single(self) -> list[str]:
        url = self.server.url("full", "big.bin")
        entry = [(url, "big.bin", self.big_sha, self.big)]
        dest = self.work / "curl.bin"
        hwm: list[float] = []

        def ours() -> float:
            got = self.ours(entry)
            hwm.append(got["hwm"])
            return got["seconds"]

        def curl_sha() -> float:
            dest.unlink(missing_ok=True)
            return _timed(["sh", "-c", f"curl -s --cacert {self.server.ca} -o {dest} {url} "
                                       f"&& sha256sum {dest} >/dev/null"])  # fmt: skip

        def requests_hashlib() -> float:
            out = self.work / "req"
            remove(out)
            out.mkdir()
            return _python(_REQUESTS, json.dumps([url]), str(out), env=self.requests_env)["seconds"]

        t = self.rounds_of({"ours": ours, "curl": curl_sha, "requests": requests_hashlib})
        mib = self.big / _MiB
        rate = {k: [mib / s for s in v] for k, v in t.items()}
        vs_curl = _ratio(t["curl"], t["ours"])
        vs_req = _ratio(t["requests"], t["ours"])
        return [
            f"single stream {mib:.0f} MiB: ours {_spread(rate['ours'], 'MiB/s')}; curl then "
            f"sha256sum {_spread(rate['curl'], 'MiB/s')}; requests+hashlib+fsync "
            f"{_spread(rate['requests'], 'MiB/s')}",
            f"  ratio ours/curl-then-sha256 {_spread(vs_curl, 'x', 2)} (target >= 1.0) "
            f"{'PASS' if statistics.median(vs_curl) >= 1.0 else 'FAIL'}",
            f"  ratio ours/requests+hashlib {_spread(vs_req, 'x', 2)} (target >= 1.1) "
            f"{'PASS' if statistics.median(vs_req) >= 1.1 else 'FAIL'}",
            f"  ours peak RSS {_spread(hwm, 'MiB')} (target <= 64) "
            f"{'PASS' if statistics.median(hwm) <= 64 else 'FAIL'}",
        ]

    def many_small(self) -> list[str]:
        entries = [(self.server.url("full", f), f, s, n) for f, s, n in self.small]
        urls = [e[0] for e in entries]
        rss: list[tuple[float, float, float]] = []

        def ours() -> float:
            got = self.ours(entries)
            rss.append((got["rss100"], got["rss"], got["hwm"]))
            return got["seconds"] * 1000 / len(entries)

        def baseline(*mode: str) -> Callable[[], float]:
            def run() -> float:
                out = self.work / "req"
                remove(out)
                out.mkdir()
                got = _python(_REQUESTS, json.dumps(urls), str(out), *mode, env=self.requests_env)
                return got["seconds"] * 1000 / len(urls)

            return run

        t = self.rounds_of({"ours": ours, "session": baseline(), "durable": baseline("durable")})
        ratio = _ratio(t["ours"], t["session"])
        durable = _ratio(t["ours"], t["durable"])
        hwm = [r[2] for r in rss]
        growth = [r[1] - r[0] for r in rss]
        return [
            f"1,000 files of 100 KiB, one process: ours {_spread(t['ours'], 'ms/file', 2)}; "
            f"one requests.Session+hashlib+fsync {_spread(t['session'], 'ms/file', 2)}; "
            f"the same made crash-safe (temporary name, fsync, rename, directory fsync) "
            f"{_spread(t['durable'], 'ms/file', 2)}",
            f"  ratio ours/session {_spread(ratio, 'x', 2)} (target <= 1.5) "
            f"{'PASS' if statistics.median(ratio) <= 1.5 else 'FAIL'}",
            f"  ratio ours/crash-safe session {_spread(durable, 'x', 2)} (context: what the "
            "lock, the record and the verification add to an equally durable loop)",
            f"  ours peak RSS {_spread(hwm, 'MiB')}, RSS growth from file 100 to 1,000 "
            f"{_spread(growth, 'MiB')} (target peak <= 64, flat) "
            f"{'PASS' if statistics.median(hwm) <= 64 and max(growth) < 8 else 'FAIL'}",
        ]

    def parallel(self) -> list[str]:
        url = self.server.url("limited", "limited.bin")
        entry = [(url, "limited.bin", self.limited_sha, self.limited)]
        dest = self.work / "aria"
        aria2c = shutil.which("aria2c")

        def asked() -> float:
            return self.ours(entry, OMNIHUB_CONNECTIONS="8")["seconds"]

        def auto() -> float:
            return self.ours(entry)["seconds"]

        def aria() -> float:
            remove(dest)
            assert aria2c is not None
            return _timed([aria2c, "-q", "-x8", "-s8", "-k1M", "--ca-certificate",
                           str(self.server.ca), f"--checksum=sha-256={self.limited_sha}",
                           "-d", str(dest), "-o", "f", url])  # fmt: skip

        def one_stream() -> float:
            (self.work / "one.bin").unlink(missing_ok=True)
            return _timed(["curl", "-s", "--cacert", str(self.server.ca), "-o",
                           str(self.work / "one.bin"), url])  # fmt: skip

        methods = {"asked": asked, "auto": auto, "one": one_stream}
        if aria2c is not None:
            methods["aria"] = aria
        t = self.rounds_of(methods)
        mib = self.limited / _MiB
        rate = {k: [mib / s for s in v] for k, v in t.items()}
        vs_one = _ratio(t["one"], t["asked"])
        lines = [
            f"parallel, 20 MB/s per connection, {mib:.0f} MiB: ours (OMNIHUB_CONNECTIONS=8) "
            f"{_spread(rate['asked'], 'MiB/s')}; ours by default (switch after the window) "
            f"{_spread(rate['auto'], 'MiB/s')}; one stream (curl) {_spread(rate['one'], 'MiB/s')}",
            f"  ratio ours/one stream {_spread(vs_one, 'x', 2)} (target >= 5) "
            f"{'PASS' if statistics.median(vs_one) >= 5 else 'FAIL'}",
        ]
        if aria2c is None:
            return [*lines, "  aria2c not installed: no comparison"]
        vs_aria = _ratio(t["aria"], t["asked"])
        return [
            *lines,
            f"  aria2c -x8 {_spread(rate['aria'], 'MiB/s')}; ratio ours/aria2c "
            f"{_spread(vs_aria, 'x', 2)} (target >= 0.9) "
            f"{'PASS' if statistics.median(vs_aria) >= 0.9 else 'FAIL'}",
        ]

    def processes(self, count: int = 16) -> list[str]:
        url = self.server.url("full", "big.bin")
        entry = json.dumps([url, "big.bin", self.big_sha, self.big])
        code = _ASKER.format(benchmarks=str(REPO / "benchmarks"))

        def storm(n: int) -> float:
            env = {**self.ours_env, "OMNIHUB_HOME": str(self.home())}
            gate = Gate()
            try:
                running = [
                    start([sys.executable, "-c", code, *gate.child_args()[1:], entry],
                          env=env, cwd=REPO, pass_fds=gate.pass_fds)
                    for _ in range(n)
                ]  # fmt: skip
                gate.wait_ready(running, timeout=300)
                warm_memory(self.work, self.big + (64 << 20))  # after the askers' imports
                released = gate.release()
            finally:
                gate.close()
            done = [wait_measured(r, timeout=1800) for r in running]
            return asking_wall(released, [json.loads(d.stdout) for d in done])

        t = self.rounds_of({"one": lambda: storm(1), "many": lambda: storm(count)})
        ratio = _ratio(t["many"], t["one"])
        return [
            f"{count} processes ask for one uncached {self.big / _MiB:.0f} MiB file: wall "
            f"{_spread(t['many'], 's', 2)}; one process {_spread(t['one'], 's', 2)}",
            f"  ratio {_spread(ratio, 'x', 2)} (target <= 1.2) "
            f"{'PASS' if statistics.median(ratio) <= 1.2 else 'FAIL'}",
        ]

    def close(self) -> None:
        self.server.stop()
        remove(self.work)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_https")
    parser.add_argument("--quick", action="store_true", help="smaller files (256/64 MiB)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=("single", "small", "parallel", "processes"))
    args = parser.parse_args(argv)
    bench = Bench(args.quick, args.rounds)
    lines = [
        f"https benchmark {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{'quick' if args.quick else 'full'}, {args.rounds} interleaved rounds, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (shared machine)"
    ]
    print(lines[0], flush=True)
    try:
        targets = {"single": bench.single, "small": bench.many_small,
                   "parallel": bench.parallel, "processes": bench.processes}  # fmt: skip
        for name, target in targets.items():
            if args.only in (None, name):
                for line in target():
                    print(line, flush=True)
                    lines.append(line)
    finally:
        bench.close()
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
