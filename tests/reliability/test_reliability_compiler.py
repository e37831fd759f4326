# ruff: noqa: RUF001 -- lookalike unicode is the point
"""Compiler bad input beyond tests/compiler: a compile SIGKILLed at random points, wrong types
in every field, lookalike unicode names, and very long text.

tests/compiler already covers hostile strings in every field, import without side effects,
duplicate names and collisions, raising specs and the writer's recovery; these add what
issue 6 lists on top.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnihub_compiler.compile import build_catalogs, compile_spec
from omnihub_compiler.errors import CompileError
from omnihub_compiler.synthetic import write_synthetic_spec

from tests.runtime.helpers import REPO, child_env

HEAD = (
    "from omnihub_compiler.dsl import NamespaceBuilder, framework_namespace\n"
    '@framework_namespace("TestModels", package="test")\n'
    "def test(ns: NamespaceBuilder) -> None:\n"
)  # the first model call is on line 4
URL = "https://example.org/zoo/samediff/m.fb"


def _spec(root: Path, body: str) -> Path:
    spec = root / "spec"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "s.py").write_text(HEAD + body, encoding="utf-8")
    return spec


def _snapshot(out: Path) -> dict[str, bytes]:
    """What a reader of the output sees: every file, without caches and hidden leftovers."""
    files = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if "__pycache__" in rel.parts or rel.parts[0].startswith("."):
            continue
        if path.is_file():
            files[rel.as_posix()] = path.read_bytes()
    return files


def _generated(snapshot: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in snapshot.items() if k.startswith("omnihub_generated/")}


def _compile_cmd(spec: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "omnihub_compiler", str(spec), "-o", str(out), "--force"]


# -- SIGKILL at random points ----------------------------------------------------------------------


def test_compile_killed_at_random_points_leaves_old_or_new_never_a_mix(tmp_path: Path) -> None:
    old_spec, new_spec = tmp_path / "old", tmp_path / "new"
    write_synthetic_spec(old_spec, 400, 4)
    write_synthetic_spec(new_spec, 600, 6)
    reference = tmp_path / "reference"
    compile_spec(new_spec, reference)
    new = _snapshot(reference)
    out = tmp_path / "out"
    compile_spec(old_spec, out)
    old = _snapshot(out)
    assert _generated(old) != _generated(new)
    started = time.monotonic()
    subprocess.run(
        _compile_cmd(new_spec, tmp_path / "timing"), env=child_env(), check=True, cwd=REPO
    )
    duration = time.monotonic() - started
    rng = random.Random(66)
    states = set()
    for _ in range(8):
        child = subprocess.Popen(
            _compile_cmd(new_spec, out),
            env=child_env(),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.0, duration * 1.1))
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        now = _snapshot(out)
        tree = _generated(now)
        assert tree in (_generated(old), _generated(new)), "a mixed generated tree is visible"
        states.add("new" if tree == _generated(new) else "old")
        for rel, content in now.items():  # files beside the tree: each old or new, whole
            assert content in (old.get(rel), new.get(rel)), rel
        if tree == _generated(new) and rng.random() < 0.5:
            compile_spec(old_spec, out)  # back to the old tree for the next round
    # A later ordinary compile completes, cleans up, and is exactly a fresh compile.
    compile_spec(new_spec, out)
    assert _snapshot(out) == new
    assert not [p.name for p in out.iterdir() if p.name.startswith(".omnihub_generated")]


# -- wrong types and missing fields ----------------------------------------------------------------

_WRONG_VALUES = [
    "5",
    "5.5",
    "None",
    "True",
    "b'bytes'",
    "['a']",
    "{'k': 1}",
    "object()",
    "('t',)",
    "{1, 2}",
    "float('inf')",
    "-1",
    "''",
]
_FIELDS = {
    "name": "str",
    "documentation": "str",
    "url": "str",
    "pretrained": "bool",
    "sha256": "str|None",
    "size": "int|None",
    "license": "str|None",
    "tags": "iterable of str",
    "python_name": "str|None",
    "factory": "str|None",
    "repository": "str|None",
    "revision": "str|None",
    "metadata": "mapping|None",
}
_VALID = {
    "name": "'m'",
    "documentation": "'Doc.'",
    "url": repr(URL),
}


def _fits(field: str, value: str) -> bool:
    """Whether ``value`` is actually of the right type (so no error is required)."""
    kind = _FIELDS[field]
    obj = eval(value)  # the fixed literals above
    if obj is None:
        return "None" in kind
    if kind.startswith("str"):
        return isinstance(obj, str)
    if kind == "bool":
        return isinstance(obj, bool)
    if kind.startswith("int"):
        return isinstance(obj, int) and not isinstance(obj, bool)
    if kind.startswith("iterable"):
        return isinstance(obj, (list, tuple, set, dict)) and all(isinstance(x, str) for x in obj)
    return isinstance(obj, dict)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(sorted(_FIELDS)),
    value=st.sampled_from(_WRONG_VALUES),
    line_offset=st.integers(0, 3),
)
def test_wrong_types_in_any_field_report_file_and_line(
    tmp_path_factory: pytest.TempPathFactory, field: str, value: str, line_offset: int
) -> None:
    if _fits(field, value):
        return
    args = {**_VALID, field: value}
    call = "ns.samediff_model(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"
    body = "    pass\n" * line_offset + f"    {call}\n"
    spec = _spec(tmp_path_factory.mktemp("spec"), body)
    with pytest.raises(CompileError) as info:
        build_catalogs(spec)
    lines = info.value.lines
    assert lines
    assert all(line.startswith(f"spec/s.py:{4 + line_offset}: ") for line in lines), lines
    assert all("Traceback" not in line for line in lines)


@pytest.mark.parametrize(
    "call",
    [
        "ns.samediff_model()",
        "ns.samediff_model('m')",
        "ns.samediff_model(documentation='d', url=URL)",
        "ns.samediff_model('m', 'd', URL, unknown_field=1)",
        "ns.gguf_model('m', 'd')",
        "ns.no_such_kind('m', 'd', URL)",
    ],
)
def test_missing_or_unknown_fields_exit_1_with_one_line(tmp_path: Path, call: str) -> None:
    spec = _spec(tmp_path, f"    URL = {URL!r}\n    {call}\n")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "omnihub_compiler", str(spec), "-o", str(out)],
        env=child_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines  # the one error, then the summary
    assert lines[0].startswith("spec/s.py:5: "), lines[0]
    assert lines[1] == "omnihub-compile: 1 error(s); nothing written"
    assert not out.exists() or _snapshot(out) == {}


# -- lookalike unicode names -----------------------------------------------------------------------

_LOOKALIKES = [
    ("resnet", "rеsnet"),  # Cyrillic e
    ("resnet", "ｒｅｓｎｅｔ"),  # fullwidth
    ("model", "ｍｏｄｅｌ"),
    ("vgg16", "vgg1６"),
    ("eval", "ｅｖａｌ"),
    ("bert", "bert\u200b"),  # zero-width space
    ("bert", "bert\u00a0"),
    ("Alex", "Aℓex"),
    ("ab", "a\u0301b"),  # combining accent
    ("ﬁle", "file"),  # ligature
]


@pytest.mark.parametrize(("plain", "lookalike"), _LOOKALIKES)
def test_lookalike_names_collide_loudly_or_stay_distinct(
    tmp_path: Path, plain: str, lookalike: str
) -> None:
    """Two names that look alike never silently share one function or one file."""
    body = (
        f"    ns.samediff_model({plain!r}, 'Doc.', 'https://example.org/zoo/a.fb')\n"
        f"    ns.samediff_model({lookalike!r}, 'Doc.', 'https://example.org/zoo/b.fb')\n"
    )
    spec = _spec(tmp_path, body)
    try:
        (catalog,) = build_catalogs(spec)
    except CompileError as exc:
        (line,) = exc.lines
        assert line.startswith("spec/s.py:5: "), line
        assert "spec/s.py:4" in line  # names the first definition too
        return
    first, second = catalog.models
    assert {first.name, second.name} == {plain, lookalike}  # kept exactly, not normalized
    assert first.python_name != second.python_name
    for model in catalog.models:
        assert model.python_name.isascii()
        assert model.python_name.isidentifier()
        assert unicodedata.normalize("NFKC", model.python_name) == model.python_name


@settings(max_examples=80, deadline=None)
@given(
    name=st.text(
        alphabet=st.characters(categories=["Lu", "Ll", "Nd", "Mn", "Zs", "Cf", "Pd"]),
        min_size=1,
        max_size=20,
    )
)
def test_any_unicode_name_becomes_an_ascii_identifier(name: str) -> None:
    from omnihub_compiler.naming import python_name

    generated = python_name(name)
    assert generated.isascii()
    assert generated.isidentifier()
    assert unicodedata.normalize("NFKC", generated) == generated


# -- very long text --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "size"),
    [("documentation", 1_000_000), ("name", 10_000), ("license", 100_000), ("tag", 100_000)],
)
def test_very_long_text_errors_or_round_trips(tmp_path: Path, field: str, size: int) -> None:
    text = ('long \u2028 text \'""" \\ ' * (size // 20 + 1))[:size].strip() + "."
    args = {"name": "'m'", "documentation": "'Doc.'", "url": repr(URL)}
    if field == "tag":
        args["tags"] = repr([text])
    else:
        args[field] = repr(text)
    call = "ns.samediff_model(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"
    spec = _spec(tmp_path, f"    {call}\n")
    out = tmp_path / "out"
    error: CompileError | None = None
    try:
        compile_spec(spec, out)
    except CompileError as exc:
        error = exc
    if error is not None:
        assert all(line.startswith("spec/s.py:4: ") for line in error.lines)
        assert all("\n" not in line and "\u2028" not in line for line in error.lines)
        assert not out.exists() or _generated(_snapshot(out)) == {}
        return
    (catalog,) = build_catalogs(spec)
    (model,) = catalog.models
    got = {
        "documentation": model.documentation,
        "name": model.name,
        "license": model.license,
        "tag": model.tags[0] if model.tags else None,
    }[field]
    assert got is not None
    assert got.split() == text.split()  # documentation may be re-flowed, never altered
    init = (out / "omnihub_generated" / "test" / "__init__.py").read_text(encoding="utf-8")
    compile(init, "__init__.py", "exec")  # still valid Python
