"""The start gate of the 16-process benchmark (benchmarks.procs.Gate, benchmarks/child.py ask).

No server, no timing asserts: small real child processes check the protocol itself -- nobody
passes the gate before it is released, everybody passes it once it is, a child that dies
before getting ready is reported instead of waited for, and closing the gate never leaves a
child blocked. The pure parts (command-line parsing, the wall computed from the children's
timestamps) are checked directly and with hypothesis.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.bench_https import asking_wall
from benchmarks.child import parse_ask
from benchmarks.procs import ChildFailed, Gate, Running, start, wait_measured

REPO = Path(__file__).resolve().parents[2]

#: A gated child: waits at the gate (benchmarks/child.py's own code), then leaves a marker.
_GATED = """\
import json, sys, time
sys.path.insert(0, {benchmarks!r})
from child import wait_at_gate
ready_fd, release_fd, marker = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
woke = wait_at_gate(ready_fd, release_fd)
open(marker, "w").close()
print(json.dumps({{"woke": woke, "finished": time.monotonic()}}))
"""


def _gated_children(gate: Gate, markers: list[Path]) -> list[Running]:
    code = _GATED.format(benchmarks=str(REPO / "benchmarks"))
    return [
        start([sys.executable, "-c", code, *gate.child_args()[1:], str(m)], pass_fds=gate.pass_fds)
        for m in markers
    ]


def test_nobody_passes_before_release_and_everybody_after(tmp_path: Path) -> None:
    markers = [tmp_path / f"passed{i}" for i in range(4)]
    gate = Gate()
    try:
        running = _gated_children(gate, markers)
        gate.wait_ready(running, timeout=60)
        assert not any(m.exists() for m in markers)  # all ready, all still at the gate
        released = gate.release()
    finally:
        gate.close()
    finished = [wait_measured(r, timeout=60) for r in running]
    assert all(m.exists() for m in markers)
    reports = [json.loads(m.stdout) for m in finished]
    # One clock (CLOCK_MONOTONIC) for parent and children: nobody woke before the release.
    assert all(r["woke"] >= released for r in reports)
    assert asking_wall(released, reports) == max(r["finished"] for r in reports) - released


def test_a_child_that_dies_before_ready_is_reported_not_waited_for(tmp_path: Path) -> None:
    gate = Gate()
    try:
        running = _gated_children(gate, [tmp_path / "ok"])
        running.append(start([sys.executable, "-c", "raise SystemExit(3)"]))
        with pytest.raises(ChildFailed, match="before ready"):
            gate.wait_ready(running, timeout=60)
    finally:
        gate.close()  # releases the healthy child: it must not hang
    assert [wait_measured(r, timeout=60, check=False).returncode for r in running] == [0, 3]


def test_closing_an_unreleased_gate_lets_its_children_go(tmp_path: Path) -> None:
    gate = Gate()
    running = _gated_children(gate, [tmp_path / "a", tmp_path / "b"])
    gate.wait_ready(running, timeout=60)
    gate.close()
    assert all(wait_measured(r, timeout=60).returncode == 0 for r in running)
    assert gate.released is not None


def test_gate_args_name_the_descriptors_a_child_inherits() -> None:
    gate = Gate()
    try:
        flag, ready, release = gate.child_args()
        assert flag == "--gate"
        assert (int(ready), int(release)) == gate.pass_fds
    finally:
        gate.close()


_NAME = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)


@given(_NAME, _NAME, st.integers(0, 10_000), st.integers(0, 10_000))
def test_ask_command_line_round_trips(package: str, function: str, ready: int, rel: int) -> None:
    gated = ["ask", package, function, "--gate", str(ready), str(rel)]
    assert parse_ask(gated) == (package, function, (ready, rel))
    assert parse_ask(gated[:3]) == (package, function, None)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["ask"],
        ["ask", "pkg"],
        ["call", "pkg", "fn"],
        ["ask", "pkg", "fn", "--gate", "3"],
        ["ask", "pkg", "fn", "--gate", "x", "4"],
        ["ask", "pkg", "fn", "--gates", "3", "4"],
        ["ask", "pkg", "fn", "--gate", "3", "-4"],
    ],
)
def test_malformed_ask_command_lines_are_rejected(argv: list[str]) -> None:
    assert parse_ask(argv) is None


@given(st.floats(0, 1e6), st.lists(st.floats(0, 1e6), min_size=1, max_size=20))
def test_asking_wall_is_the_last_finish_after_release(released: float, ends: list[float]) -> None:
    reports = [{"finished": end} for end in ends]
    wall = asking_wall(released, reports)
    assert wall == max(ends) - released
    assert all(end - released <= wall for end in ends)


def test_asking_wall_needs_a_report() -> None:
    with pytest.raises(ValueError, match="no child"):
        asking_wall(0.0, [])
