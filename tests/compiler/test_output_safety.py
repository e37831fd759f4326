"""Exit 0 means the output imports and is right (issue 16, items 1, 2, 4, 5 and 6)."""

from __future__ import annotations

import keyword
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnihub import DEFAULT_OMNIHUB_URL, Framework, ModelType
from omnihub.catalog import ModelEntry
from omnihub.errors import ConfigurationError
from omnihub.urls import RESERVED_SUFFIXES, build_model_url, split_name
from omnihub_compiler.compile import build_catalogs, compile_spec, render_tree
from omnihub_compiler.dsl import ModelDefinition
from omnihub_compiler.errors import CompileError
from omnihub_compiler.loader import LoadedNamespace
from omnihub_compiler.validate import validate
from omnihub_compiler.verify import import_problems

IMPORTS = (
    "from omnihub_compiler.dsl import DEFAULT_OMNIHUB_URL as U, NamespaceBuilder,"
    " framework_namespace\n"
)
MODEL = '    ns.samediff_model("m", "Doc.", f"{U}/samediff/m.fb")\n'


def namespace(name: str, package: str, body: str = MODEL) -> str:
    return (
        f"@framework_namespace({name!r}, package={package!r})\n"
        f"def ns_{abs(hash((name, package)))}(ns: NamespaceBuilder) -> None:\n{body}"
    )


def write_spec(tmp_path: Path, text: str, name: str = "s.py") -> Path:
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / name).write_text(text)
    return spec_dir


def errors(spec_dir: Path) -> list[str]:
    with pytest.raises(CompileError) as info:
        build_catalogs(spec_dir)
    return info.value.lines


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omnihub_compiler", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


# -- item 1: names that would not import are spec errors ------------------------------------


@pytest.mark.parametrize("name", ["None", "True", "False", "Pretrained", "TYPE_CHECKING"])
def test_a_keyword_or_reserved_namespace_name_is_a_spec_error(tmp_path: Path, name: str) -> None:
    spec_dir = write_spec(tmp_path, IMPORTS + namespace(name, "p"))
    (line,) = errors(spec_dir)
    assert line.startswith(f"spec/s.py:2: namespace name {name!r} must be an ASCII identifier")


@pytest.mark.parametrize("package", ["staticmethod", "bool", "annotations", "match", "type", "_x"])
def test_a_package_the_generated_code_uses_is_a_spec_error(tmp_path: Path, package: str) -> None:
    spec_dir = write_spec(tmp_path, IMPORTS + namespace("Models", package))
    (line,) = errors(spec_dir)
    assert line.startswith(f"spec/s.py:2: package {package!r} must be a lower-case identifier")


def test_cli_rejects_namespace_none_and_writes_nothing(tmp_path: Path) -> None:
    spec_dir = write_spec(tmp_path, IMPORTS + namespace("None", "none_"))
    result = run_cli(str(spec_dir), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1
    assert "namespace name 'None'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_import_problems_reports_syntax_and_class_body_failures() -> None:
    files = {
        "omnihub_generated/a/__init__.py": b"class None:\n    pass\n",
        "omnihub_generated/b/__init__.py": (
            b"class P:\n    def staticmethod(): ...\n    @staticmethod\n    def x(): ...\n"
        ),
        "omnihub_generated/c/__init__.py": b"__all__ = ['f']\n",
        "omnihub_generated/d/__init__.pyi": b"def f() -> int: ...\n",
        "pyproject.toml": b"not python",
    }
    problems = import_problems(files)
    assert [p.split(":")[0] for p in problems] == [
        "omnihub_generated/a/__init__.py",
        "omnihub_generated/b/__init__.py",
        "omnihub_generated/c/__init__.py",
    ]
    assert "SyntaxError" in problems[0]
    assert "TypeError" in problems[1]
    assert "__all__ names undefined f" in problems[2]


_NAMESPACE = st.from_regex(r"[A-Z][A-Za-z0-9_]{0,12}", fullmatch=True)
_PACKAGE = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)


@settings(max_examples=40, deadline=None)
@given(name=_NAMESPACE, package=_PACKAGE)
def test_every_accepted_namespace_compiles_to_code_that_imports(
    tmp_path_factory: pytest.TempPathFactory, name: str, package: str
) -> None:
    tmp_path = tmp_path_factory.mktemp("ns")
    spec_dir = write_spec(tmp_path, IMPORTS + namespace(name, package))
    unsafe = (
        keyword.iskeyword(name)
        or name in ("Pretrained", "TYPE_CHECKING")
        or keyword.iskeyword(package)
        or keyword.issoftkeyword(package)
        or package in ("pretrained", "staticmethod", "bool", "annotations")
        or "__" in package
        or package.endswith("_")
    )
    if unsafe:  # rejected names are exactly the unsafe ones
        with pytest.raises(CompileError):
            render_tree(spec_dir)
    else:
        assert import_problems(render_tree(spec_dir)) == []


# -- item 2: an empty or wrong spec directory is an error and the output stays ---------------


def _tree(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no spec modules (*.py) in the spec directory"),
        ({"README.md": "notes"}, "no spec modules (*.py) in the spec directory"),
        (
            {"helpers.py": "X = 1\n"},
            "the spec modules declare no @framework_namespace; nothing to compile",
        ),
        (
            {"s.py": IMPORTS + namespace("Models", "models", "    pass\n")},
            "the spec modules declare no models; nothing to compile",
        ),
    ],
)
def test_an_empty_or_wrong_spec_dir_is_an_error_and_leaves_the_output(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    good = write_spec(tmp_path / "good", IMPORTS + namespace("Models", "models"))
    out = tmp_path / "out"
    compile_spec(good, out)
    before = _tree(out)
    assert "omnihub_generated/models/__init__.py" in before
    bad = tmp_path / "spec"
    bad.mkdir()
    for name, text in files.items():
        (bad / name).write_text(text)
    result = run_cli(str(bad), "-o", str(out), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == f"{bad}: {message}"
    assert _tree(out) == before


# -- items 3 and 4: one URL rule with the runtime; one line at the spec's line, never a traceback


def model_line(call: str) -> str:
    return IMPORTS + namespace("Models", "models", MODEL + f"    {call}\n")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            'ns.samediff_model("x", "d", "http://[::1/x.fb")',
            "url 'http://[::1/x.fb' is not a valid URL (Invalid IPv6 URL)",
        ),
        (
            'ns.samediff_model("x", "d", "https://ex\\uff0fample.com/x.fb")',
            "url 'https://ex\uff0fample.com/x.fb' is not a valid URL (netloc 'ex\uff0fample.com'"
            " contains invalid characters under NFKC normalization)",
        ),
        (
            'ns.samediff_model("x", "d", "https://ex\\u00e4mple.com/x.fb")',
            "url 'https://ex\u00e4mple.com/x.fb' has an invalid host 'ex\u00e4mple.com'"
            " (ASCII letters, digits, '-' and '.')",
        ),
        (
            'ns.samediff_model("x", "d", "https://h/x.fb", size=10**5000)',
            "size must be between 0 and 2**63 - 1, not a 16610-bit integer",
        ),
        (
            'ns.samediff_model("x", "d", "https://h/x.fb", metadata={"n": 10**5000})',
            "metadata['n'] must fit in 64 bits",
        ),
        ('raise GeneratorExit("spec gave up")', "GeneratorExit: spec gave up"),
        ("raise SystemExit(3)", "SystemExit: 3"),
        (
            'ns.samediff_model("x", "d", "https://h/model:v2.fb")',
            "url 'https://h/model:v2.fb' gives an invalid model file 'model:v2.fb':"
            " forbidden character(s) ':'",
        ),
        (
            'ns.samediff_model("x", "d", "https://h/caf%e9.fb")',
            "url 'https://h/caf%e9.fb' segment 'caf%e9.fb' is not percent-encoded UTF-8",
        ),
        (
            'ns.samediff_model("x", "d", f"{U}/samediff/%6D2.fb")',
            f"url '{DEFAULT_OMNIHUB_URL}/samediff/%6D2.fb' is not percent-encoded canonically;"
            f" the runtime fetches '{DEFAULT_OMNIHUB_URL}/samediff/m2.fb'",
        ),
        (
            'ns.samediff_model("x", "d", "https://h/x.fb.lock")',
            "url 'https://h/x.fb.lock' gives an invalid model file 'x.fb.lock': names ending in"
            f" {', '.join(RESERVED_SUFFIXES)} are reserved",
        ),
        (
            'ns.samediff_model("x", "d", "https://h/x.fb", repository="github")',
            "repository 'github' is not registered in the runtime (known: omnihub, huggingface,"
            " url, onnx-model-zoo)",
        ),
        (
            'ns.samediff_model("x", "d", "https://user:pw@h/x.fb")',
            "url 'https://user:pw@h/x.fb' must not contain credentials",
        ),
    ],
)
def test_bad_input_is_one_line_at_the_spec_line(tmp_path: Path, call: str, message: str) -> None:
    spec_dir = write_spec(tmp_path, model_line(call))
    assert errors(spec_dir) == [f"spec/s.py:5: {message}"]


def test_cli_reports_a_bad_url_without_a_traceback(tmp_path: Path) -> None:
    spec_dir = write_spec(tmp_path, model_line('ns.samediff_model("x", "d", "http://[::1/x.fb")'))
    result = run_cli(str(spec_dir), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith("spec/s.py:5: url 'http://[::1/x.fb'")
    assert "Traceback" not in result.stderr


def _definition(url: str, repository: str | None = None) -> ModelDefinition:
    return ModelDefinition(
        kind="samediff_model",
        name="m",
        documentation="Doc.",
        framework=Framework.SAMEDIFF,
        model_type=ModelType.COMP_GRAPH,
        format=None,
        url=url,
        repository=repository,
        file="spec/s.py",
        line=7,
    )


def _validate_one(definition: ModelDefinition) -> tuple[ModelEntry | None, list[str]]:
    ns = LoadedNamespace(name="M", package="m", file="spec/s.py", line=1, models=(definition,))
    catalogs, problems = validate([ns])
    entries = [m for c in catalogs for m in c.models]
    return (entries[0] if entries else None), [str(p) for p in problems]


_URL_TEXT = st.text(st.characters(codec="utf-8"), max_size=30)


@settings(max_examples=300, deadline=None)
@given(tail=_URL_TEXT, host=st.sampled_from(["https://h/", f"{DEFAULT_OMNIHUB_URL}/samediff/"]))
def test_any_url_is_one_line_or_a_file_the_runtime_accepts_and_fetches(
    tail: str, host: str
) -> None:
    url = host + tail
    entry, problems = _validate_one(_definition(url))
    if entry is None:
        assert len(problems) == 1
        assert problems[0].startswith("spec/s.py:7: ")
        assert "\n" not in problems[0]
        return
    assert split_name(entry.file)
    if host != "https://h/":  # the zoo: the runtime rebuilds exactly the spec's URL
        assert build_model_url(DEFAULT_OMNIHUB_URL, "samediff", entry.file) == url
    else:  # DL4J's rule: the last segment
        assert entry.file == unquote(url.rsplit("/", 1)[-1], errors="strict")


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=40))
def test_every_name_the_runtime_accepts_compiles_to_the_same_file(name: str) -> None:
    try:
        split_name(name)
    except ConfigurationError:
        return
    url = build_model_url(DEFAULT_OMNIHUB_URL, "samediff", name)
    entry, problems = _validate_one(_definition(url))
    assert problems == []
    assert entry is not None
    assert entry.file == name


# -- item 5: two models, one cache file ---------------------------------------------------------

SHA_A = "a" * 64
SHA_B = "b" * 64


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("", ""),  # neither pinned: DL4J silently shares one file
        (f", sha256={SHA_A!r}", ""),
        ("", f", sha256={SHA_A!r}"),
        (f", sha256={SHA_A!r}", f", sha256={SHA_B!r}"),
    ],
)
def test_two_models_with_one_file_name_need_the_same_sha256(
    tmp_path: Path, first: str, second: str
) -> None:
    body = (
        f'    ns.samediff_model("a", "d", "https://one.example/x/m.fb"{first})\n'
        f'    ns.samediff_model("b", "d", "https://two.example/y/m.fb"{second})\n'
    )
    spec_dir = write_spec(tmp_path, IMPORTS + namespace("Models", "models", body))
    assert errors(spec_dir) == [
        "spec/s.py:5: model 'b' shares the cache file samediff/m.fb with model 'a'"
        " (spec/s.py:4); allowed only when both declare the same sha256 (and size)"
    ]


def test_two_models_with_one_file_and_one_sha256_are_accepted(tmp_path: Path) -> None:
    body = (
        f'    ns.samediff_model("a", "d", "https://one.example/m.fb", sha256={SHA_A!r})\n'
        f'    ns.samediff_model("b", "d", "https://two.example/m.fb", sha256={SHA_A!r})\n'
    )
    (catalog,) = build_catalogs(write_spec(tmp_path, IMPORTS + namespace("M", "m", body)))
    assert [m.file for m in catalog.models] == ["m.fb", "m.fb"]


# -- item 6: the no-op shortcut sees every input ------------------------------------------------

DATA_SPEC = (
    "import json, pathlib\n" + IMPORTS + "@framework_namespace('Data', package='data')\n"
    "def data(ns: NamespaceBuilder) -> None:\n"
    "    rows = json.loads((pathlib.Path(__file__).parent / 'data' / 'models.json').read_text())\n"
    "    for row in rows:\n"
    "        ns.samediff_model(row, 'Doc.', f'{U}/samediff/{row}.fb')\n"
)


def test_editing_a_data_file_the_spec_reads_recompiles(tmp_path: Path) -> None:
    spec_dir = write_spec(tmp_path, DATA_SPEC)
    (spec_dir / "data").mkdir()
    manifest = spec_dir / "data" / "models.json"
    manifest.write_text('["alpha"]')
    out = tmp_path / "out"
    assert compile_spec(spec_dir, out).changed
    assert not compile_spec(spec_dir, out)  # the stamp: up to date
    manifest.write_text('["alpha", "beta"]')
    diff = compile_spec(spec_dir, out)
    assert "omnihub_generated/data/__init__.py" in diff.changed
    assert "def beta(" in (out / "omnihub_generated/data/__init__.py").read_text()
    assert not compile_spec(spec_dir, out)  # bytecode written by the import does not count


def test_ctrl_c_in_a_spec_stops_the_compile_with_exit_130(tmp_path: Path) -> None:
    spec_dir = write_spec(tmp_path, model_line("raise KeyboardInterrupt"))
    result = run_cli(str(spec_dir), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        130,
        "omnihub-compile: interrupted; nothing written\n",
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("namespace_name", "call"),
    [
        ("SameDiffGraph", MODEL.strip()),
        ("ComputationGraph", 'ns.dl4j_model("m", "d", f"{U}/dl4j/m.zip", True, "COMP_GRAPH")'),
    ],
)
def test_a_namespace_named_like_its_result_type_still_imports(
    tmp_path: Path, namespace_name: str, call: str
) -> None:
    spec_dir = write_spec(tmp_path, IMPORTS + namespace(namespace_name, "p", f"    {call}\n"))
    files = render_tree(spec_dir)
    assert import_problems(files) == []
    init = files["omnihub_generated/p/__init__.py"].decode()
    assert f"import {namespace_name} as _{namespace_name}" in init
    assert f"class {namespace_name}:" in init
