"""The pure parts of the benchmark suite: results, the PASS/FAIL rule, the report.

Nothing here measures anything or touches the network, so it is unit-tested directly
(tests/benchmarks/test_harness.py). A :class:`Result` holds what one benchmark measured;
:func:`format_line` prints it as the one line the suite promises; :func:`render_section` and
:func:`update_report` keep docs/benchmarks.md current without clobbering what others wrote.
"""

from __future__ import annotations

import math
import operator
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DESIGN_HEADING",
    "SECTIONS",
    "Result",
    "Target",
    "decide",
    "format_line",
    "format_quantity",
    "median",
    "render_section",
    "update_report",
]

_COMPARE: Mapping[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
}

#: The heading of the hand-written part of docs/benchmarks.md, preserved across runs.
DESIGN_HEADING = "## Design choices"

#: The report's sections, in order, and their headings: the two whole-suite modes, and the
#: conversion group run alone (``run.py --only convert``).
SECTIONS: Mapping[str, str] = {
    "full": "full mode",
    "quick": "quick mode",
    "convert": "conversion and inference alone (issue 13)",
}


@dataclass(frozen=True)
class Target:
    """What a benchmark must reach: ``<subject> <op> <value>``.

    ``subject`` is ``"ours"`` (an absolute bound in ``unit``) or ``"ratio"`` (ours divided by
    the baseline, unitless).
    """

    subject: str
    op: str
    value: float
    unit: str = ""

    def __post_init__(self) -> None:
        if self.subject not in ("ours", "ratio"):
            raise ValueError(f"target subject must be 'ours' or 'ratio', not {self.subject!r}")
        if self.op not in _COMPARE:
            raise ValueError(f"target op must be one of {sorted(_COMPARE)}, not {self.op!r}")

    def describe(self) -> str:
        """``ours<=2s`` or ``ratio>=0.95``: the ``target=`` field of the line."""
        unit = "" if self.subject == "ratio" else self.unit
        return f"{self.subject}{self.op}{_number(self.value)}{unit}"

    def holds(self, value: float) -> bool:
        """Whether ``value`` (of :attr:`subject`) meets the target; NaN never does."""
        return not math.isnan(value) and _COMPARE[self.op](value, self.value)


@dataclass(frozen=True)
class Result:
    """One benchmark's measurement.

    ``ours`` is None when the thing measured does not exist yet or failed to run (the line then
    shows ``ours=n/a`` and FAILs). ``checks`` are extra yes/no conditions that must all hold
    for a PASS (no file written, zero sockets, one download, ...). ``note`` explains how the
    numbers were obtained or why something is missing; it goes into the report, not the line.
    """

    name: str
    ours: float | None
    baseline: float | None
    target: Target
    unit: str
    checks: Mapping[str, bool] = field(default_factory=dict)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """``ours / baseline``, or None when either is missing or the baseline is zero."""
        if self.ours is None or self.baseline is None or self.baseline == 0:
            return None
        return self.ours / self.baseline

    @property
    def passed(self) -> bool:
        """See :func:`decide`."""
        return decide(self)

    @property
    def failed_checks(self) -> list[str]:
        """The names of the checks that did not hold, sorted."""
        return sorted(name for name, ok in self.checks.items() if not ok)


def decide(result: Result) -> bool:
    """PASS when the target's subject exists and meets the target and every check holds."""
    subject = result.ours if result.target.subject == "ours" else result.ratio
    if subject is None:
        return False
    return result.target.holds(subject) and all(result.checks.values())


def _number(value: float) -> str:
    """Three significant digits, no exponent for ordinary magnitudes, no trailing zeros."""
    if math.isnan(value):
        return "nan"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000 or magnitude < 0.001:
        return f"{value:.3g}"
    digits = max(0, 2 - math.floor(math.log10(magnitude)))
    text = f"{value:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_quantity(value: float | None, unit: str = "") -> str:
    """``1.52s``, ``412MiB/s``, ``n/a`` for a missing value."""
    if value is None:
        return "n/a"
    return f"{_number(value)}{unit}"


def format_line(result: Result) -> str:
    """The one line a benchmark prints: ``<name>: ours=.. baseline=.. ratio=.. target=.. PASS``."""
    verdict = "PASS" if result.passed else "FAIL"
    return (
        f"{result.name}: ours={format_quantity(result.ours, result.unit)}"
        f" baseline={format_quantity(result.baseline, result.unit)}"
        f" ratio={format_quantity(result.ratio)}"
        f" target={result.target.describe()} {verdict}"
    )


def median(samples: Sequence[float]) -> float:
    """The median of a non-empty sample (a ValueError names the problem otherwise)."""
    if not samples:
        raise ValueError("median of an empty sample")
    return statistics.median(samples)


def _cell(text: str) -> str:
    """Escape a markdown table cell: pipes and newlines would break the row."""
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _marker(mode: str, edge: str) -> str:
    return f"<!-- benchmarks:{mode}:{edge} -->"


def render_section(
    mode: str,
    results: Sequence[Result],
    machine: Mapping[str, str],
    command: str,
    output: str,
) -> str:
    """The markdown of one run: machine, results table, notes and the raw output lines.

    The section is wrapped in ``<!-- benchmarks:<mode>:start/end -->`` markers so that a later
    run of the same mode replaces it and a run of the other mode leaves it alone.
    """
    passed = sum(1 for r in results if r.passed)
    lines = [
        _marker(mode, "start"),
        f"## Results: {SECTIONS.get(mode, mode + ' mode')}",
        "",
        f"`{command}` -- {passed} of {len(results)} PASS.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {_cell(key)} | {_cell(value)} |" for key, value in machine.items()),
        "",
        "| benchmark | ours | baseline | ratio | target | result | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        verdict = "PASS" if r.passed else "**FAIL**"
        notes = r.note
        if r.failed_checks:
            notes = f"failed checks: {', '.join(r.failed_checks)}. {notes}".strip()
        lines.append(
            f"| {_cell(r.name)} | {format_quantity(r.ours, r.unit)}"
            f" | {format_quantity(r.baseline, r.unit)} | {format_quantity(r.ratio)}"
            f" | {_cell(r.target.describe())} | {verdict} | {_cell(notes)} |"
        )
    lines += ["", "```", output.rstrip("\n"), "```", _marker(mode, "end"), ""]
    return "\n".join(lines)


def update_report(existing: str, section: str, mode: str, preamble: str, design: str) -> str:
    """Return docs/benchmarks.md with ``section`` (for ``mode``) replaced or added.

    Kept from ``existing``: the other sections (:data:`SECTIONS`), the hand-written sections
    between the last of them and :data:`DESIGN_HEADING` (the https and cluster results), and
    everything from :data:`DESIGN_HEADING` on (others extend it by hand). ``preamble`` (title
    and how to run) is always rewritten; ``design`` is used only when ``existing`` has no
    design section yet.
    """
    sections: dict[str, str] = {}
    last_end = -1
    for other in SECTIONS:
        pattern = re.compile(
            re.escape(_marker(other, "start")) + r".*?" + re.escape(_marker(other, "end")) + "\n?",
            re.DOTALL,
        )
        found = pattern.search(existing)
        if found:
            sections[other] = found.group(0).rstrip("\n") + "\n"
            last_end = max(last_end, found.end())
    sections[mode] = section.rstrip("\n") + "\n"
    start = existing.find("\n" + DESIGN_HEADING)
    if existing.startswith(DESIGN_HEADING):
        start = 0
    kept_design = existing[start:].lstrip("\n") if start >= 0 else design
    by_hand = existing[last_end:start].strip("\n") if 0 <= last_end <= start else ""
    parts = [preamble.rstrip("\n") + "\n"]
    parts += [sections[m] for m in SECTIONS if m in sections]
    if by_hand:
        parts.append(by_hand + "\n")
    parts.append(kept_design.rstrip("\n") + "\n")
    return "\n".join(parts)
