"""The offline newcomer demo, through a subprocess, and the files it writes by hand."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnihub.demo import DEMO_PACKAGE
from omnihub.demo._iris import CLASSES, FLOWERS, decision_tree, rule_weights
from omnihub.demo._zoo import nd4j_write_row_vector

from .conftest import Cli

# Fails the process on any socket connection: proves the demo never touches the network.
_NO_NETWORK = """
import sys
def _guard(event, args):
    if event in {"socket.connect", "socket.getaddrinfo"}:
        raise RuntimeError(f"network use: {event} {args}")
sys.addaudithook(_guard)
from omnihub.demo import main
code = main(sys.argv[1:])
print("requests imported:", "requests" in sys.modules)
sys.exit(code)
"""


def test_demo_runs_offline_and_loads_real_models(cli: Cli, tmp_path: Path) -> None:
    work = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-c", _NO_NETWORK, "--dir", str(work)],
        capture_output=True,
        text=True,
        env={**cli.env, "OMNIHUB_URL": "https://example.invalid/never"},
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "MultiLayerNetwork: 2 layers, 19 parameters (FLOAT)" in out
    assert "layer 0 hidden   DenseLayer   nIn=4 nOut=2" in out
    assert "onnx.ModelProto: graph 'omnihub_demo_mlp', opset 13" in out
    assert "MatMul -> Add -> Tanh -> MatMul -> Add -> Softmax; 19 parameters" in out
    assert "SameDiffGraph: 11 variables, 6 ops, 19 parameters in ['b0', 'b1', 'w0', 'w1']" in out
    assert "ops: mmul -> add -> tanh -> mmul -> add -> softmax" in out
    assert "not trained" in out
    assert "requests imported: False" in out
    # every model classifies the three flowers as the hand-set decision tree says, with the
    # probabilities an independent numpy forward pass of the same weights gives
    expected = _rule_probabilities()
    answers = [line for line in out.splitlines() if "(probabilities " in line]
    assert len(answers) == 9  # 3 models x 3 flowers
    for number, line in enumerate(answers):
        flower, species = FLOWERS[number % 3]
        assert line.strip().startswith(f"{list(flower)} -> {species}")
        assert line.endswith(f"expected {species}, the flower is {species}) right")
        values = json.loads(line.split("(probabilities ", 1)[1].split(";")[0])
        assert values == pytest.approx(expected[number % 3].tolist(), abs=2e-4)
    assert "WRONG" not in out
    assert "predicting with net.output(x)" in out
    assert "predicting with sd.output({'input': x})" in out
    assert f"omnihub run {DEMO_PACKAGE}.iris_mlp_dl4j --input {work / 'flowers.npy'}" in out
    bars = [line for line in result.stderr.splitlines() if "100%|" in line]
    assert len(bars) == 3  # one finished progress bar per model (stderr is not a terminal)
    # the runtime cached and recorded both files under the demo's own OMNIHUB_HOME
    cached = sorted(p.relative_to(work / "home").as_posix() for p in (work / "home").rglob("*"))
    assert "dl4j/demo/iris_mlp.zip" in cached
    assert "samediff/demo/iris_mlp.fb" in cached
    assert "onnx/demo/iris_mlp.onnx.omnihub.json" in cached


def _forward(features: np.ndarray) -> np.ndarray:
    """The demo weights' forward pass in numpy (float64): tanh hidden layer, softmax output."""
    w0, b0, w1, b1 = (np.array(part, dtype=np.float64) for part in rule_weights())
    scores = np.tanh(features @ w0 + b0) @ w1 + b1
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return np.asarray(exp / exp.sum(axis=-1, keepdims=True))


def _rule_probabilities() -> np.ndarray:
    return _forward(np.array([flower for flower, _ in FLOWERS], dtype=np.float64))


_length = st.floats(0.5, 7.0).filter(lambda v: abs(v - 2.45) > 0.1)
_width = st.floats(0.1, 2.6).filter(lambda v: abs(v - 1.75) > 0.05)


@given(st.floats(4.0, 8.0), st.floats(2.0, 4.5), _length, _width)
def test_the_demo_weights_implement_the_decision_tree(
    sepal_length: float, sepal_width: float, petal_length: float, petal_width: float
) -> None:
    flower = (sepal_length, sepal_width, petal_length, petal_width)
    probabilities = _forward(np.array([flower]))[0]
    assert CLASSES[int(np.argmax(probabilities))] == decision_tree(flower)
    assert probabilities.max() > 0.6  # a clear answer, not a near tie


def test_the_demo_flowers_are_what_the_tree_says() -> None:
    assert [decision_tree(flower) for flower, _ in FLOWERS] == [s for _, s in FLOWERS]
    assert [s for _, s in FLOWERS] == list(CLASSES)


def test_a_wrong_answer_is_reported_and_fails() -> None:
    import io

    from omnihub.demo import _predict

    out = io.StringIO()
    always_setosa = np.tile(np.array([0.9, 0.05, 0.05], dtype=np.float32), (3, 1))
    assert _predict(lambda x: always_setosa, out) is False
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("right")
    assert lines[1].endswith("expected versicolor, the flower is versicolor) WRONG")


def test_the_demo_ends_with_a_working_omnihub_run_line(cli: Cli, tmp_path: Path) -> None:
    """The exports and the ``omnihub run`` line the demo prints work as printed."""
    work = tmp_path / "kept"
    result = cli.run("demo", "--dir", str(work))
    assert result.returncode == 0, result.stderr
    exports = dict(
        line.strip().removeprefix("export ").split("=", 1)
        for line in result.stdout.splitlines()
        if line.strip().startswith("export ")
    )
    assert set(exports) == {"OMNIHUB_URL", "OMNIHUB_HOME", "OMNIHUB_OFFLINE", "PYTHONPATH"}
    command = result.stdout.rsplit("predict from the command line: `omnihub ", 1)[1].split("`")[0]
    out = tmp_path / "y.npy"
    run = cli.run(*command.split(), "--output", str(out), env=exports)
    assert run.returncode == 0, run.stderr
    predicted = np.load(out)
    np.testing.assert_allclose(predicted, _rule_probabilities(), rtol=1e-4, atol=2e-5)
    assert [CLASSES[i] for i in predicted.argmax(axis=1)] == [s for _, s in FLOWERS]


def test_omnihub_demo_command_cleans_up(cli: Cli) -> None:
    result = cli.run("demo")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    root = Path(first.split("everything lives in ")[1].split(",")[0])
    assert not root.exists()  # the temporary directory is removed
    assert "6. a second load is a cache hit" in result.stdout


def test_demo_zoo_is_listed_by_the_cli(cli: Cli, tmp_path: Path) -> None:
    from omnihub.demo import DEMO_PACKAGE, build_zoo

    entries = build_zoo(tmp_path)
    env = {"PYTHONPATH": str(tmp_path / "site")}
    listed = json.loads(cli.run("list", "--json", "--tag", "demo", env=env).stdout)
    assert [m["qualified_name"] for m in listed] == [
        f"{DEMO_PACKAGE}.{e.python_name}" for e in sorted(entries, key=lambda e: e.python_name)
    ]
    assert all(m["sha256"] and m["size"] for m in listed)


@settings(max_examples=50)
@given(st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=200))
def test_nd4j_row_vector_round_trips_through_the_dl4j_reader(values: list[float]) -> None:
    from omnihub.loaders._javastream import JavaStream, read_nd4j_array

    stream = JavaStream(nd4j_write_row_vector(values), "coefficients.bin")
    array = read_nd4j_array(stream)
    assert stream.remaining == 0
    assert array.array.shape == (1, len(values))
    assert array.data_type == "FLOAT"
    assert array.array.ravel().tolist() == values


@settings(max_examples=25, deadline=None)
@given(
    layers=st.tuples(*(st.integers(min_value=1, max_value=6) for _ in range(3))),
    rng=st.randoms(use_true_random=False),
)
def test_samediff_writer_round_trips_through_the_samediff_reader(
    layers: tuple[int, int, int], rng: random.Random, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from omnihub.demo._samediff import write_samediff_mlp
    from omnihub.loaders.samediff import read_flatgraph

    n_in, hidden, n_out = layers
    count = n_in * hidden + hidden + hidden * n_out + n_out
    weights = [
        float(struct.unpack("f", struct.pack("f", rng.uniform(-9, 9)))[0]) for _ in range(count)
    ]
    path = tmp_path_factory.mktemp("fb") / "g.fb"
    write_samediff_mlp(path, layers, weights)
    graph = read_flatgraph(path)
    flat = [v for name in ("w0", "b0", "w1", "b1") for v in graph.weights[name].ravel().tolist()]
    assert flat == weights
    assert graph.weights["w0"].shape == (n_in, hidden)
    assert graph.weights["w1"].shape == (hidden, n_out)
    assert [op.op_name for op in graph.ops] == ["mmul", "add", "relu", "mmul", "add", "softmax"]
    assert graph.outputs == ("probabilities",)
