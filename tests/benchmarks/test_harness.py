"""The benchmark harness: lines, the PASS/FAIL rule, the markdown report, and its helpers.

No timing is asserted and no server is started: these check that the suite reports what it
measured faithfully, and that what it feeds omnihub (catalogue entries, a spec) still fits
the runtime's and the compiler's contracts.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import ModelEntry

from benchmarks.bench_compile import snapshot
from benchmarks.harness import (
    DESIGN_HEADING,
    Result,
    Target,
    decide,
    format_line,
    format_quantity,
    median,
    render_section,
    update_report,
)
from benchmarks.procs import ChildFailed, run_measured, vm_hwm
from benchmarks.servers import access_log_entries
from benchmarks.workload import (
    FRAMEWORK_DIR,
    TestFile,
    Unavailable,
    compiler_command,
    entry_json,
    warm_memory,
    write_raw_model_spec,
)

LINE = re.compile(
    r"^(?P<name>[\w.]+): ours=(?P<ours>\S+) baseline=(?P<baseline>\S+) "
    r"ratio=(?P<ratio>\S+) target=(?P<target>\S+) (?P<verdict>PASS|FAIL)$"
)
MACHINE = {"nproc": "2", "CPU": "Test CPU", "Python": "CPython 3.11.7"}


def _result(**changes: object) -> Result:
    fields: dict[str, object] = {
        "name": "compile_10k_cold",
        "ours": 1.5,
        "baseline": 40.0,
        "target": Target("ours", "<=", 2.0, "s"),
        "unit": "s",
    }
    fields.update(changes)
    return Result(**fields)  # type: ignore[arg-type]


def test_line_has_the_promised_shape() -> None:
    line = format_line(_result())
    assert line == "compile_10k_cold: ours=1.5s baseline=40s ratio=0.0375 target=ours<=2s PASS"
    assert LINE.match(line)


def test_missing_ours_prints_na_and_fails() -> None:
    result = _result(ours=None)
    line = format_line(result)
    assert "ours=n/a" in line
    assert "ratio=n/a" in line
    assert line.endswith(" FAIL")
    assert not decide(result)


def test_absolute_target_decides_on_ours() -> None:
    assert decide(_result(ours=2.0))  # the bound itself passes
    assert not decide(_result(ours=2.01))
    assert decide(_result(ours=2.0, baseline=None))  # an absolute target needs no baseline


def test_ratio_target_decides_on_ours_over_baseline() -> None:
    throughput = Target("ratio", ">=", 0.95)
    assert decide(_result(ours=950.0, baseline=1000.0, target=throughput, unit="MiB/s"))
    assert not decide(_result(ours=940.0, baseline=1000.0, target=throughput, unit="MiB/s"))
    assert not decide(_result(ours=940.0, baseline=None, target=throughput, unit="MiB/s"))
    assert not decide(_result(ours=940.0, baseline=0.0, target=throughput, unit="MiB/s"))


def test_a_failed_check_fails_a_met_target() -> None:
    result = _result(checks={"no file written": False, "zero sockets": True})
    assert not decide(result)
    assert result.failed_checks == ["no file written"]
    assert format_line(result).endswith(" FAIL")
    assert decide(_result(checks={"zero sockets": True}))


def test_nan_never_passes() -> None:
    assert not decide(_result(ours=math.nan))
    assert format_quantity(math.nan, "s") == "nans"


def test_target_rejects_unknown_subject_and_operator() -> None:
    with pytest.raises(ValueError, match="subject"):
        Target("speed", "<=", 1.0)
    with pytest.raises(ValueError, match="op"):
        Target("ours", "<", 1.0)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (None, "s", "n/a"),
        (0.0, "ms", "0ms"),
        (1.0, "s", "1s"),
        (0.0375, "", "0.0375"),
        (412.34, "MiB/s", "412MiB/s"),
        (12.345, "ms", "12.3ms"),
        (1536.0, "MiB/s", "1.54e+03MiB/s"),
        (0.00012, "s", "0.00012s"),
    ],
)
def test_quantities_have_three_significant_digits(
    value: float | None, unit: str, text: str
) -> None:
    assert format_quantity(value, unit) == text


@given(st.floats(min_value=1e-9, max_value=1e9, allow_nan=False))
def test_formatted_numbers_parse_back_within_rounding(value: float) -> None:
    text = format_quantity(value)
    assert " " not in text
    assert math.isclose(float(text), value, rel_tol=0.01)


@given(
    ours=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
    baseline=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
    bound=st.floats(min_value=0.001, max_value=1e6),
    op=st.sampled_from(["<=", ">="]),
    subject=st.sampled_from(["ours", "ratio"]),
)
def test_every_line_parses_and_its_verdict_matches_decide(
    ours: float | None, baseline: float | None, bound: float, op: str, subject: str
) -> None:
    result = _result(ours=ours, baseline=baseline, target=Target(subject, op, bound, "s"))
    match = LINE.match(format_line(result))
    assert match is not None
    assert (match["verdict"] == "PASS") == decide(result)
    if ours is None:
        assert match["verdict"] == "FAIL"


def test_median() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0]) == 1.5
    with pytest.raises(ValueError, match="empty"):
        median([])


def _section(mode: str, results: list[Result]) -> str:
    lines = [format_line(r) for r in results]
    return render_section(mode, results, MACHINE, f"run.py --{mode}", "\n".join(lines))


def test_section_holds_machine_table_and_raw_lines() -> None:
    results = [_result(), _result(name="compile_10k_noop", ours=None, note="not | built")]
    text = _section("quick", results)
    assert "## Results: quick mode" in text
    assert "1 of 2 PASS" in text
    assert "| CPU | Test CPU |" in text
    assert "| nproc | 2 |" in text
    assert "| compile_10k_cold | 1.5s | 40s | 0.0375 | ours<=2s | PASS |" in text
    assert "| **FAIL** | not \\| built |" in text  # pipes in notes cannot break the table
    for result in results:
        assert format_line(result) in text
    rows = [line for line in text.splitlines() if line.startswith("| compile")]
    assert all(row.count(" | ") == 6 for row in rows)


def test_failed_checks_are_named_in_the_notes() -> None:
    text = _section("quick", [_result(checks={"no file written": False})])
    assert "failed checks: no file written" in text


def test_report_replaces_its_mode_and_keeps_the_rest() -> None:
    quick_one = _section("quick", [_result(ours=1.0)])
    full = _section("full", [_result(ours=3.0)])
    design = f"{DESIGN_HEADING}\n\ndefault text\n"
    first = update_report("", quick_one, "quick", "# Benchmarks\n", design)
    assert first.startswith("# Benchmarks\n")
    assert "default text" in first
    # someone extends the design section by hand; a full run adds its own section
    edited = first.replace("default text", "hand-written text")
    second = update_report(edited, full, "full", "# Benchmarks (new preamble)\n", design)
    assert "hand-written text" in second
    assert "default text" not in second
    assert "ours=1s" in second
    assert "ours=3s" in second
    assert second.startswith("# Benchmarks (new preamble)\n")
    # a new quick run replaces only the quick section
    quick_two = _section("quick", [_result(ours=1.25)])
    third = update_report(second, quick_two, "quick", "# Benchmarks\n", design)
    assert "ours=1s " not in third
    assert "ours=1.25s" in third
    assert "ours=3s" in third
    assert third.count("## Results: quick mode") == 1
    assert third.count(DESIGN_HEADING) == 1
    assert third.index("## Results: full mode") < third.index(DESIGN_HEADING)
    # idempotent: the same run merged twice gives the same document
    assert update_report(third, quick_two, "quick", "# Benchmarks\n", design) == third


def test_report_keeps_the_hand_written_sections_before_the_design() -> None:
    """The https and cluster results are written by hand between the suite's sections and
    the design choices; a suite run must not drop them (one did, 2026-12-06)."""
    design = f"{DESIGN_HEADING}\n\ndesign text\n"
    first = update_report("", _section("quick", [_result(ours=1.0)]), "quick", "# B\n", design)
    by_hand = "## Downloads over https\n\nhand-measured table\n"
    edited = first.replace(DESIGN_HEADING, by_hand + "\n" + DESIGN_HEADING)
    again = update_report(edited, _section("quick", [_result(ours=2.0)]), "quick", "# B\n", design)
    assert "hand-measured table" in again
    assert again.index("## Results: quick mode") < again.index("## Downloads over https")
    assert again.index("## Downloads over https") < again.index(DESIGN_HEADING)
    assert "ours=2s" in again
    assert (
        update_report(again, _section("quick", [_result(ours=2.0)]), "quick", "# B\n", design)
        == again
    )


def test_access_log_parsing() -> None:
    text = (
        '/full/onnx/a.bin 200 1048576 "-"\n/full/onnx/a.bin 206 524288 "bytes=0-524287"\ngarbage\n'
    )
    entries = access_log_entries(text)
    assert [(e.status, e.body_bytes, e.range_header) for e in entries] == [
        (200, 1048576, "-"),
        (206, 524288, "bytes=0-524287"),
    ]
    assert {e.uri for e in entries} == {"/full/onnx/a.bin"}


def test_entry_json_builds_a_runtime_model_entry() -> None:
    test = TestFile("bench-1m.bin", 1 << 20, "ab" * 32)
    data = json.loads(entry_json(test, "http://127.0.0.1:8/full"))
    entry = ModelEntry(
        **{
            **data,
            "framework": Framework(data["framework"]),
            "model_type": ModelType(data["model_type"]),
            "format": Format(data["format"]),
        }
    )
    assert entry.format is Format.RAW
    assert entry.file == test.name
    assert entry.url == f"http://127.0.0.1:8/full/{FRAMEWORK_DIR}/bench-1m.bin"
    assert (entry.sha256, entry.size) == (test.sha256, test.size)


def test_run_measured_captures_output_and_exit_status() -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit({})"
    done = run_measured([sys.executable, "-c", code.format(0)], timeout=60, track_rss=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")
    assert done.wall > 0
    with pytest.raises(ChildFailed, match="exited 3: err"):
        run_measured([sys.executable, "-c", code.format(3)], timeout=60)
    failed = run_measured([sys.executable, "-c", code.format(3)], timeout=60, check=False)
    assert failed.returncode == 3


def test_run_measured_kills_a_child_that_overruns() -> None:
    with pytest.raises(ChildFailed, match="killed"):
        run_measured([sys.executable, "-c", "import time; time.sleep(60)"], timeout=0.5)


def test_vm_hwm_reads_this_process_and_tolerates_a_missing_one() -> None:
    assert vm_hwm("self") > 1 << 20
    assert vm_hwm(2**22 + 12345) == 0  # above pid_max: no such process


def test_snapshot_sees_written_added_and_removed_files(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    kept = tmp_path / "pkg" / "__init__.py"
    kept.write_text("x = 1\n", encoding="utf-8")
    before = snapshot(tmp_path)
    assert snapshot(tmp_path) == before  # reading changes nothing
    kept.write_text("x = 1\n", encoding="utf-8")  # same content, rewritten
    os.utime(kept, ns=(1, 1))
    (tmp_path / "pkg" / "new.py").write_text("", encoding="utf-8")
    after = snapshot(tmp_path)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed == {"pkg/__init__.py", "pkg/new.py"}


def test_raw_model_spec_compiles_to_the_served_model_last(tmp_path: Path) -> None:
    test = TestFile("bench-1m.bin", 1 << 20, "cd" * 32)
    write_raw_model_spec(tmp_path / "spec", test, fillers=2)
    out = tmp_path / "out"
    try:
        command = compiler_command()
    except Unavailable as exc:
        pytest.skip(f"the compiler is not available: {exc}")
    run_measured([*command, tmp_path / "spec", "-o", out], timeout=120)
    catalog = json.loads((out / "omnihub_generated" / "bench" / "_catalog.json").read_text())
    models = catalog["models"]
    assert len(models) == 3
    served = [m for m in models if m["file"] == test.name]
    assert len(served) == 1
    assert served[0]["sha256"] == test.sha256
    assert served[0]["size"] == test.size
    assert served[0]["format"] == "raw"
    assert max(m["python_name"] for m in models) == served[0]["python_name"]


def test_the_convert_section_sits_after_the_modes_and_survives_their_runs() -> None:
    design = f"{DESIGN_HEADING}\n\ntext\n"
    convert = _section("convert", [_result(ours=0.5)])
    assert "## Results: conversion and inference alone (issue 13)" in convert
    first = update_report("", convert, "convert", "# B\n", design)
    full = _section("full", [_result(ours=3.0)])
    second = update_report(first, full, "full", "# B\n", design)
    assert "ours=0.5s" in second
    assert second.index("## Results: full mode") < second.index("## Results: conversion")
    assert second.index("## Results: conversion") < second.index(DESIGN_HEADING)
    again = _section("convert", [_result(ours=0.75)])
    third = update_report(second, again, "convert", "# B\n", design)
    assert "ours=0.5s" not in third
    assert "ours=0.75s" in third
    assert "ours=3s" in third


def _written() -> int:
    """Bytes this process passed to write(2) so far (Linux /proc/self/io ``wchar``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_warm_memory_writes_what_it_is_asked_and_leaves_nothing(tmp_path: Path) -> None:
    """The warm-up before each timed method writes at least ``size`` bytes (whole MiB
    blocks) and removes its scratch file, so no method finds it."""
    before = sorted(tmp_path.iterdir())
    start = _written()
    warm_memory(tmp_path, (3 << 20) + 1)
    assert 4 << 20 <= _written() - start < 5 << 20
    assert sorted(tmp_path.iterdir()) == before
