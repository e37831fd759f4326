"""``omnihub run`` and the ``runnable`` line of ``omnihub info``, through a subprocess.

The zoo serves real model files from ../shared (a trained DL4J iris network, a DL4J
ComputationGraph, a SameDiff graph) plus the demo's ONNX classifier; every prediction the
command prints or saves is compared with the loaded object's own ``output()`` in this process.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import ModelEntry
from omnihub.cli._arrays import InputSpec, parse_input

from tests.loaders.helpers import shared_dir

from .conftest import Cli
from .zoo import entry, pinned, write_catalog, write_zoo_file

#: Three iris flowers, one per species (Fisher's rows 1, 51, 101).
FLOWERS = np.array(
    [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]], dtype=np.float32
)


def _model(
    cli: Cli, name: str, data: bytes, kind: tuple[Format, Framework, ModelType]
) -> ModelEntry:
    fmt, framework, model_type = kind
    suffix = {Format.DL4J: "zip", Format.SAMEDIFF: "fb", Format.ONNX: "onnx"}.get(fmt, "bin")
    model = pinned(
        entry(
            name,
            "runzoo",
            framework=framework,
            format=fmt,
            model_type=model_type,
            file=f"run/{name}.{suffix}",
        ),
        data,
    )
    write_zoo_file(cli.zoo, model, data)
    return model


@pytest.fixture
def run_zoo(cli: Cli, tmp_path: Path) -> dict[str, Path]:
    """Install the run test models in ``cli``'s catalogue and zoo; return their source files."""
    from omnihub.demo._zoo import write_onnx_mlp

    dl4j, samediff = shared_dir("dl4j"), shared_dir("samediff")
    onnx_file = tmp_path / "demo.onnx"
    write_onnx_mlp(onnx_file)
    sources = {
        "iris": dl4j / "trained_iris_model.zip",
        "cg_lstm": dl4j / "060_ModelSerializer_Regression_CG_LSTM_1.zip",
        "moon_sd": samediff / "MLPMoonSD_Model_RANDOM_INIT_UNTRAINED.fb",
        "demo_onnx": onnx_file,
        "custom": shared_dir("dl4j-inference") / "CustomLayerExample_100b6_float.bin",
    }
    kinds = {
        "iris": (Format.DL4J, Framework.DL4J, ModelType.SEQUENTIAL),
        "cg_lstm": (Format.DL4J, Framework.DL4J, ModelType.COMP_GRAPH),
        "moon_sd": (Format.SAMEDIFF, Framework.SAMEDIFF, ModelType.SAMEDIFF_PIPELINE),
        "demo_onnx": (Format.ONNX, Framework.ONNX, ModelType.COMP_GRAPH),
        "custom": (Format.DL4J, Framework.DL4J, ModelType.SEQUENTIAL),
    }
    models = [_model(cli, name, sources[name].read_bytes(), kinds[name]) for name in sources]
    models.append(
        _model(cli, "blob", b"raw bytes", (Format.RAW, Framework.ONNX, ModelType.COMP_GRAPH))
    )
    write_catalog(cli.site, "runzoo", models)
    return sources


def _save(cli: Cli, name: str, array: np.ndarray) -> Path:
    path = cli.root / name
    np.save(path, array)
    return path


def _one_error_line(result: object) -> str:
    """The single stderr line of a failed run (no traceback)."""
    stderr = result.stderr  # type: ignore[attr-defined]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return str(lines[0])


def test_run_saves_what_network_output_computes(cli: Cli, run_zoo: dict[str, Path]) -> None:
    from omnihub.loaders.dl4j import read_model_serializer

    x = _save(cli, "flowers.npy", FLOWERS)
    out = cli.root / "y.npy"
    result = cli.run("run", "runzoo.iris", "--input", str(x), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert f"wrote output to {out}" in result.stderr
    saved = np.load(out)
    network = read_model_serializer(run_zoo["iris"])
    np.testing.assert_allclose(saved, network.output(FLOWERS), rtol=1e-6, atol=1e-7)
    assert saved.shape == (3, 3)
    np.testing.assert_allclose(saved.sum(axis=1), 1.0, rtol=1e-5)  # softmax rows
    # the model was fetched into the cache like any other command does
    assert (cli.home / "dl4j" / "run" / "iris.zip").read_bytes() == run_zoo["iris"].read_bytes()


@pytest.mark.parametrize(
    ("fixture_name", "model_type"),
    [
        ("SyntheticCNN", ModelType.SEQUENTIAL),
        ("SyntheticBidirectionalRNNGraph", ModelType.COMP_GRAPH),
    ],
)
def test_run_reproduces_dl4j_stored_outputs(
    cli: Cli, fixture_name: str, model_type: ModelType
) -> None:
    """The front door gives what DL4J itself computed on the regression fixtures' inputs."""
    from tests.convert.fixtures import TOLERANCE, fixture

    path, x, expected = fixture(fixture_name)
    model = _model(cli, "dl4jfix", path.read_bytes(), (Format.DL4J, Framework.DL4J, model_type))
    write_catalog(cli.site, "runzoo", [model])
    out = cli.root / "y.npy"
    result = cli.run("run", "dl4jfix", "--input", str(_save(cli, "x.npy", x)), "-o", str(out))
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(out), expected, **TOLERANCE)


def test_run_prints_the_output_without_output_file(cli: Cli, run_zoo: dict[str, Path]) -> None:
    x = _save(cli, "one.npy", FLOWERS[:1])
    result = cli.run("run", "iris", "-i", str(x))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "output: shape (1, 3) float32"
    printed = [float(v) for v in re.findall(r"[-+]?[0-9.]+(?:e[-+]?[0-9]+)?", " ".join(lines[1:]))]
    assert len(printed) == 3
    assert sum(printed) == pytest.approx(1.0, abs=1e-3)


def test_run_json_prints_every_output_in_full(cli: Cli, run_zoo: dict[str, Path]) -> None:
    from omnihub.loaders.dl4j import read_model_serializer

    x = _save(cli, "flowers.npy", FLOWERS)
    result = cli.run("run", "iris", "--input", str(x), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "runzoo.iris"
    assert list(data["outputs"]) == ["output"]
    output = data["outputs"]["output"]
    assert (output["shape"], output["dtype"]) == ([3, 3], "float32")
    expected = read_model_serializer(run_zoo["iris"]).output(FLOWERS)
    np.testing.assert_allclose(np.array(output["values"]), expected, rtol=1e-6)


def test_run_exports_the_onnx_model_that_ran(cli: Cli, run_zoo: dict[str, Path]) -> None:
    import onnx
    import onnxruntime

    x = _save(cli, "flowers.npy", FLOWERS)
    exported, out = cli.root / "iris.onnx", cli.root / "y.npy"
    args = ("run", "iris", "--input", str(x), "--output", str(out), "--onnx", str(exported))
    result = cli.run(*args)
    assert result.returncode == 0, result.stderr
    assert f"to {exported}" in result.stderr
    model = onnx.load(exported)
    onnx.checker.check_model(model, full_check=True)
    session = onnxruntime.InferenceSession(exported.read_bytes())
    (direct,) = session.run(None, {session.get_inputs()[0].name: FLOWERS})
    np.testing.assert_array_equal(direct, np.load(out))


def test_run_with_only_onnx_exports_without_running(cli: Cli, run_zoo: dict[str, Path]) -> None:
    import onnx

    exported = cli.root / "only.onnx"
    result = cli.run("run", "iris", "--onnx", str(exported))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert len(onnx.load(exported).graph.initializer) >= 6  # 3 layers, W and b each


def test_run_feeds_a_graph_by_input_name(cli: Cli, run_zoo: dict[str, Path]) -> None:
    from omnihub.loaders.dl4j import ComputationGraph, read_model_serializer

    rng = np.random.default_rng(3)
    sequence = rng.standard_normal((2, 3, 5)).astype(np.float32)  # [N, nIn=3, T=5] (NCW)
    x = _save(cli, "seq.npy", sequence)
    named, positional = cli.root / "named.npy", cli.root / "positional.npy"
    result = cli.run("run", "cg_lstm", "--input", f"in={x}", "--output", str(named))
    assert result.returncode == 0, result.stderr
    result = cli.run("run", "cg_lstm", "--input", str(x), "--output", str(positional))
    assert result.returncode == 0, result.stderr
    graph = read_model_serializer(run_zoo["cg_lstm"])
    assert isinstance(graph, ComputationGraph)
    expected = graph.output_single(sequence)
    np.testing.assert_allclose(np.load(named), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.load(named), np.load(positional))
    wrong = cli.run("run", "cg_lstm", "--input", f"input={x}")
    assert wrong.returncode == 1
    assert _one_error_line(wrong).endswith("unknown input input; the ComputationGraph takes in")


def test_run_feeds_samediff_placeholders_by_name(cli: Cli, run_zoo: dict[str, Path]) -> None:
    from omnihub.loaders.samediff import read_flatgraph

    points = np.random.default_rng(5).standard_normal((4, 2)).astype(np.float32)
    x = _save(cli, "points.npy", points)
    out = cli.root / "sd.npz"
    result = cli.run("run", "moon_sd", "--input", f"in={x}", "--output", str(out))
    assert result.returncode == 0, result.stderr
    graph = read_flatgraph(run_zoo["moon_sd"])
    expected = graph.output({"in": points})
    with np.load(out) as saved:
        assert sorted(saved.files) == sorted(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(saved[name], value, rtol=1e-6, atol=1e-7)
    unnamed = cli.run("run", "moon_sd", "--input", str(x))
    assert unnamed.returncode == 1
    assert "give --input NAME=FILE.npy per placeholder (in, label)" in _one_error_line(unnamed)


def test_run_an_onnx_model_by_its_input_names(cli: Cli, run_zoo: dict[str, Path]) -> None:
    import onnxruntime

    x = _save(cli, "flowers.npy", FLOWERS.astype(np.float64))  # float64 is cast to float32
    out = cli.root / "p.npy"
    result = cli.run("run", "demo_onnx", "--input", f"x={x}", "--output", str(out))
    assert result.returncode == 0, result.stderr
    session = onnxruntime.InferenceSession(run_zoo["demo_onnx"].read_bytes())
    (direct,) = session.run(None, {"x": FLOWERS})
    np.testing.assert_array_equal(np.load(out), direct)
    assert np.load(out).argmax(axis=1).tolist() == [0, 1, 2]  # the demo's hand-set rule


def test_run_downloads_from_a_loopback_http_zoo(
    cli: Cli, run_zoo: dict[str, Path], http_zoo: str
) -> None:
    x = _save(cli, "flowers.npy", FLOWERS)
    out = cli.root / "y.npy"
    result = cli.run(
        "run", "demo_onnx", "-i", str(x), "-o", str(out), env={"OMNIHUB_URL": http_zoo}
    )
    assert result.returncode == 0, result.stderr
    assert (cli.home / "onnx" / "run" / "demo_onnx.onnx").exists()
    offline = cli.run("--offline", "run", "demo_onnx", "-i", str(x))  # now a cache hit
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.startswith("probabilities: shape (3, 3) float32")


@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        (lambda d: d / "missing.npy", "missing.npy: no such input file"),
        (lambda d: _text(d / "text.npy"), "text.npy: not a readable .npy array"),
        (lambda d: _npz(d / "arrays.npz"), "arrays.npz: is an .npz archive"),
    ],
)
def test_an_unreadable_input_is_one_line_naming_the_file(
    cli: Cli, run_zoo: dict[str, Path], make_input: object, message: str
) -> None:
    path = make_input(cli.root)  # type: ignore[operator]
    result = cli.run("run", "iris", "--input", str(path))
    assert result.returncode == 1
    line = _one_error_line(result)
    assert line.startswith("omnihub: error: InputError: ")
    assert message in line


def _text(path: Path) -> Path:
    path.write_text("5.1 3.5 1.4 0.2\n")
    return path


def _npz(path: Path) -> Path:
    np.savez(path, a=FLOWERS)
    return path


def test_a_wrong_feature_size_names_the_expected_shape(cli: Cli, run_zoo: dict[str, Path]) -> None:
    x = _save(cli, "five.npy", np.ones((2, 5), dtype=np.float32))
    result = cli.run("run", "iris", "--input", str(x))
    assert result.returncode == 1
    line = _one_error_line(result)
    assert line.startswith("omnihub: error: InputError: runzoo.iris: ")
    assert "4" in line.split("runzoo.iris: ", 1)[1]  # the expected feature size is named


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("run", "nosuchmodel", "--input", "x.npy"), 3, "no installed model is named"),
        (("run", "blob", "--input", "x.npy"), 1, "runzoo.blob cannot run: format raw"),
        (("run", "iris"), 1, "nothing to do: give --input FILE.npy"),
    ],
)
def test_run_errors_are_one_line_with_the_documented_code(
    cli: Cli, run_zoo: dict[str, Path], args: tuple[str, ...], code: int, message: str
) -> None:
    result = cli.run(*args)
    assert result.returncode == code, result.stderr
    assert message in _one_error_line(result)


def test_input_count_and_syntax_are_checked(cli: Cli, run_zoo: dict[str, Path]) -> None:
    x = _save(cli, "flowers.npy", FLOWERS)
    two = cli.run("run", "iris", "--input", str(x), "--input", str(x))
    assert two.returncode == 1
    assert "a MultiLayerNetwork takes one input, got 2 --input" in _one_error_line(two)
    bad = cli.run("run", "iris", "--input", "name=")
    assert bad.returncode == 2
    assert "expected NAME=FILE.npy" in bad.stderr


def test_info_says_whether_a_model_is_runnable(cli: Cli, run_zoo: dict[str, Path]) -> None:
    text = cli.run("info", "iris")
    assert text.returncode == 0, text.stderr
    assert "runnable    yes (dl4j -> ONNX, onnxruntime)" in text.stdout
    data = json.loads(cli.run("info", "--json", "moon_sd").stdout)
    assert data["runnable"] is True
    assert data["runnable_how"] == "yes (samediff -> ONNX, onnxruntime)"
    blob = json.loads(cli.run("info", "--json", "blob").stdout)
    assert blob["runnable"] is False
    assert blob["runnable_how"].startswith("no: format raw")


def test_info_imports_neither_numpy_nor_onnx(cli: Cli, run_zoo: dict[str, Path]) -> None:
    """``runnable`` is decided from the format and installed packages: ``info`` stays cheap."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom omnihub.cli import main\nmain(['info', 'iris'])\n"
        "print(sorted({'numpy', 'onnx', 'onnxruntime', 'omnihub.convert'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli.env, check=True
    )
    assert "runnable    yes (dl4j -> ONNX, onnxruntime)" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_info_convert_checks_the_cached_file_without_downloading(
    cli: Cli, run_zoo: dict[str, Path]
) -> None:
    before = json.loads(cli.run("info", "--json", "--convert", "iris").stdout)
    assert before["converts"] is None
    assert before["converts_how"].startswith("not checked: not cached")
    assert not (cli.home / "dl4j" / "run" / "iris.zip").exists()  # info never downloads
    assert cli.run("download", "iris", "custom", "demo_onnx").returncode == 0
    text = cli.run("info", "--convert", "iris").stdout
    assert re.search(r"^converts +yes: \d+ ONNX nodes, 6 initializers, opset \d+$", text, re.M)
    onnx_model = json.loads(cli.run("info", "--json", "--convert", "demo_onnx").stdout)
    assert onnx_model["converts_how"] == "yes: 6 ONNX nodes, 4 initializers, opset 13"
    custom = json.loads(cli.run("info", "--json", "--convert", "custom").stdout)
    assert custom["runnable"] is True  # the format runs; this file needs a user's converter
    assert custom["converts"] is False
    assert "CustomLayer): no converter for this layer type" in custom["converts_how"]
    assert "register_layer" in custom["converts_how"]
    blob = json.loads(cli.run("info", "--json", "--convert", "blob").stdout)
    assert blob["converts"] is None
    assert blob["converts_how"].startswith("not checked: format raw")
    assert "converts" not in json.loads(cli.run("info", "--json", "iris").stdout)


def test_run_reports_an_unsupported_layer_in_one_line(cli: Cli, run_zoo: dict[str, Path]) -> None:
    x = _save(cli, "x.npy", np.ones((1, 4), dtype=np.float32))
    result = cli.run("run", "custom", "--input", str(x))
    assert result.returncode == 1
    line = _one_error_line(result)
    assert line.startswith("omnihub: error: LoadError: ")
    assert "CustomLayer): no converter for this layer type" in line


def test_an_object_that_cannot_run_is_one_line(cli: Cli, run_zoo: dict[str, Path]) -> None:
    """A spec's factory may return anything; run and --onnx refuse what they cannot run."""
    (cli.site / "oddfactory.py").write_text("def make(path, entry):\n    return object()\n")
    data = run_zoo["iris"].read_bytes()
    odd = pinned(
        entry(
            "odd",
            "oddzoo",
            framework=Framework.DL4J,
            format=Format.DL4J,
            model_type=ModelType.SEQUENTIAL,
            file="odd/odd.zip",
            factory="oddfactory:make",
        ),
        data,
    )
    write_zoo_file(cli.zoo, odd, data)
    write_catalog(cli.site, "oddzoo", [odd])
    x = _save(cli, "x.npy", FLOWERS)
    ran = cli.run("run", "odd", "--input", str(x))
    assert ran.returncode == 1
    assert _one_error_line(ran).endswith("oddzoo.odd: cannot run a builtins.object")
    exported = cli.run("run", "odd", "--onnx", str(cli.root / "odd.onnx"))
    assert exported.returncode == 1
    assert _one_error_line(exported).endswith("cannot export a builtins.object as ONNX")
    assert not (cli.root / "odd.onnx").exists()


def _without_onnxruntime(tmp_path: Path, cli: Cli) -> dict[str, str]:
    """The environment of a child in which ``import onnxruntime`` fails (as if not installed)."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['onnxruntime'] = None\n")
    return {"PYTHONPATH": f"{blocker}:{cli.site}"}


def test_info_without_onnxruntime_points_at_the_reference_fallback(
    cli: Cli, run_zoo: dict[str, Path], tmp_path: Path
) -> None:
    result = cli.run("info", "--json", "iris", env=_without_onnxruntime(tmp_path, cli))
    assert result.returncode == 0, result.stderr
    how = json.loads(result.stdout)["runnable_how"]
    assert how == "yes (dl4j -> ONNX, onnx.reference: slow; pip install onnxruntime)"


@pytest.mark.parametrize("name", ["iris", "demo_onnx"])
def test_run_without_onnxruntime_falls_back_to_onnx_reference(
    cli: Cli, run_zoo: dict[str, Path], tmp_path: Path, name: str
) -> None:
    x = _save(cli, "flowers.npy", FLOWERS)
    fast, slow = cli.root / "fast.npy", cli.root / "slow.npy"
    result = cli.run("run", name, "-i", str(x), "-o", str(fast))
    assert result.returncode == 0, result.stderr
    env = _without_onnxruntime(tmp_path, cli)
    result = cli.run("run", name, "-i", str(x), "-o", str(slow), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        "omnihub: warning: onnxruntime is not installed: running with onnx.reference"
    )
    np.testing.assert_allclose(np.load(slow), np.load(fast), rtol=1e-5, atol=1e-6)


def test_several_outputs_are_saved_as_npz_only(tmp_path: Path) -> None:
    from omnihub.cli._arrays import InputError, write_results

    results = [("a", FLOWERS), ("b", FLOWERS[:1] * 2)]
    with pytest.raises(InputError, match=r"y\.npy: the model computed 2 outputs \(a, b\)"):
        write_results(tmp_path / "y.npy", results)
    assert not (tmp_path / "y.npy").exists()
    assert write_results(tmp_path / "y.npz", results) == f"wrote a, b to {tmp_path / 'y.npz'}"
    with np.load(tmp_path / "y.npz") as saved:
        np.testing.assert_array_equal(saved["b"], FLOWERS[:1] * 2)
    write_results(tmp_path / "plain", results[:1])  # exactly this path: no suffix appended
    np.testing.assert_array_equal(np.load(tmp_path / "plain"), FLOWERS)


@given(
    st.text(st.characters(blacklist_characters="=/\\\x00"), min_size=1, max_size=8),
    st.text(st.characters(blacklist_characters="\x00"), min_size=1, max_size=12),
)
def test_parse_input_splits_name_and_file(name: str, file: str) -> None:
    assert parse_input(f"{name}={file}") == InputSpec(name, Path(file))
    if "=" not in file:
        assert parse_input(file) == InputSpec(None, Path(file))
    assert parse_input(f"dir/{name}={file}") == InputSpec(None, Path(f"dir/{name}={file}"))


@given(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=5, unique=True), st.randoms())
def test_named_inputs_are_ordered_by_the_model_and_checked(
    names: list[str], rng: random.Random
) -> None:
    from omnihub.cli._arrays import InputError
    from omnihub.cli._run import _by_name

    given_order = list(names)
    rng.shuffle(given_order)
    specs = [(name, f"value of {name}") for name in given_order]
    assert _by_name(specs, names, "graph") == [f"value of {name}" for name in names]
    positional = [(None, f"value of {name}") for name in names]
    assert _by_name(positional, names, "graph") == [value for _, value in positional]
    with pytest.raises(InputError, match=r"missing input|takes"):
        _by_name(specs[1:], names, "graph")
    with pytest.raises(InputError, match="unknown input"):
        _by_name([*specs, ("\x00nope", "x")], names, "graph")
    if len(names) > 1:
        with pytest.raises(InputError, match=r"NAME=FILE\.npy or none"):
            _by_name([(None, "x"), *specs[1:]], names, "graph")


@pytest.mark.parametrize("text", ["", "name="])
def test_parse_input_refuses_empty_parts(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_input(text)
