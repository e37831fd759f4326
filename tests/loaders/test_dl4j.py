"""DL4J ModelSerializer loader: the real archives, both JSON dialects, Nd4j.write round trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from omnihub._enums import Format, Framework, ModelType
from omnihub.errors import LoadError
from omnihub.loaders import load
from omnihub.loaders._javastream import JavaStream, read_nd4j_array
from omnihub.loaders.dl4j import ComputationGraph, MultiLayerNetwork, read_model_serializer

from .helpers import make_entry, nd4j_write, shared_dir, write_zip

# file -> (kind, parameters, data type, allocation mode, updater-state size or None)
REAL_FILES: dict[str, tuple[type[Any], int, str, str, int | None]] = {
    "trained_iris_model.zip": (MultiLayerNetwork, 39, "FLOAT", "JAVACPP", None),
    "080_ModelSerializer_Regression_MLP_1.zip": (MultiLayerNetwork, 41, "FLOAT", "JAVACPP", 41),
    "060_ModelSerializer_Regression_CG_LSTM_1.zip": (
        ComputationGraph,
        477,
        "FLOAT",
        "JAVACPP",
        477,
    ),
    "CustomLayerExample_100b3_float.bin": (MultiLayerNetwork, 149, "FLOAT", "LONG_SHAPE", 149),
    "CustomLayerExample_100b6_half.bin": (
        MultiLayerNetwork,
        149,
        "HALF",
        "MIXED_DATA_TYPES",
        149,
    ),
    "CustomLayerExample_100b6_double.bin": (
        MultiLayerNetwork,
        149,
        "DOUBLE",
        "MIXED_DATA_TYPES",
        149,
    ),
    "SyntheticCNN_100b6.bin": (MultiLayerNetwork, 1304, "FLOAT", "MIXED_DATA_TYPES", 2608),
    "MLPMoon_Model_RANDOM_INIT_UNTRAINED.zip": (
        MultiLayerNetwork,
        102,
        "FLOAT",
        "MIXED_DATA_TYPES",
        102,
    ),
}
NUMPY_OF = {"FLOAT": np.float32, "HALF": np.float16, "DOUBLE": np.float64}


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_file(name: str) -> None:
    kind, n_params, data_type, mode, n_updater = REAL_FILES[name]
    model_type = ModelType.COMP_GRAPH if kind is ComputationGraph else ModelType.SEQUENTIAL
    entry = make_entry(Format.DL4J, Framework.DL4J, model_type, file=name)
    net = load(entry, shared_dir("dl4j") / name)
    assert type(net) is kind
    assert isinstance(net, (MultiLayerNetwork, ComputationGraph))
    assert net.param_count == n_params
    assert net.expected_param_count == n_params  # the configuration agrees
    assert net.params_data_type == data_type
    assert net.params.dtype == NUMPY_OF[data_type]
    assert net.params_allocation_mode == mode
    assert np.isfinite(net.params).all()
    if n_updater is None:
        assert net.updater_state is None
    else:
        assert net.updater_state is not None
        assert net.updater_state.size == n_updater
    table = net.param_table()
    assert sum(a.size for a in table.values()) == n_params
    assert net.extra_entries == ()


def test_iris_layers() -> None:
    net = read_model_serializer(shared_dir("dl4j") / "trained_iris_model.zip")
    assert [(layer.type, layer.n_in, layer.n_out) for layer in net.layers] == [
        ("DenseLayer", 4, 3),
        ("DenseLayer", 3, 3),
        ("OutputLayer", 3, 3),
    ]
    assert [layer.class_name for layer in net.layers] == [None, None, None]  # pre-1.0 dialect
    assert [layer.layer_name for layer in net.layers] == ["layer0", "layer1", "layer2"]
    table = net.param_table()
    assert {k: v.shape for k, v in table.items()} == {
        "0_W": (4, 3),
        "0_b": (3,),
        "1_W": (3, 3),
        "1_b": (3,),
        "2_W": (3, 3),
        "2_b": (3,),
    }
    # a forward pass of the trained classifier gives a probability distribution per row
    x = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    h = np.tanh(x @ table["0_W"] + table["0_b"])
    h = np.tanh(h @ table["1_W"] + table["1_b"])
    logits = h @ table["2_W"] + table["2_b"]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert probs.shape == (2, 3)
    assert int(probs[0].argmax()) != int(probs[1].argmax())  # setosa vs virginica


def test_regression_params_are_the_sequence_dl4j_wrote() -> None:
    """The 0.x regression files were saved with params = 1..N: checks order and endianness."""
    for name in (
        "080_ModelSerializer_Regression_MLP_1.zip",
        "060_ModelSerializer_Regression_CG_LSTM_1.zip",
    ):
        net = read_model_serializer(shared_dir("dl4j") / name)
        np.testing.assert_array_equal(net.params, np.arange(1, net.param_count + 1))


def test_computation_graph_structure() -> None:
    net = read_model_serializer(shared_dir("dl4j") / "060_ModelSerializer_Regression_CG_LSTM_1.zip")
    assert isinstance(net, ComputationGraph)
    assert net.inputs == ("in",)
    assert net.outputs == ("2",)
    assert [(v.name, v.type, v.inputs) for v in net.vertices] == [
        ("0", "LayerVertex", ("in",)),
        ("1", "LayerVertex", ("0",)),
        ("2", "LayerVertex", ("1",)),
    ]
    assert [layer.type for layer in net.layers] == [
        "GravesLSTM",
        "GravesBidirectionalLSTM",
        "RnnOutputLayer",
    ]
    assert net.param_table()["0_RW"].shape == (4, 4 * 4 + 3)


def test_cnn_layouts_put_zero_biases_where_dl4j_does() -> None:
    """Biases are initialised to 0: the split must land exactly on the zero runs."""
    net = read_model_serializer(shared_dir("dl4j") / "SyntheticCNN_100b6.bin")
    table = net.param_table()
    for key in ("0_b", "1_b", "5_b", "8_b"):
        assert not table[key].any(), key
    for key in ("0_W", "1_W", "1_pW", "5_W", "8_W"):
        assert np.count_nonzero(table[key]) == table[key].size, key
    assert table["8_W"].shape == (4, 16, 4, 4)
    types = [layer.type for layer in net.layers]
    assert types[:3] == ["ConvolutionLayer", "SeparableConvolution2D", "SubsamplingLayer"]


def test_unknown_custom_layer_is_kept() -> None:
    net = read_model_serializer(shared_dir("dl4j") / "CustomLayerExample_100b6_double.bin")
    custom = net.layers[1]
    assert custom.type == "CustomLayer"
    assert custom.class_name == "org.deeplearning4j.regressiontest.customlayer100a.CustomLayer"
    assert custom.layout_inferred
    assert custom.param_count == 6 * 7 + 7
    assert custom.config["layerName"] == "layer1"


# -- constructed archives ---------------------------------------------------------------------


def _mln_config(layers: list[dict[str, Any]], dialect: str) -> dict[str, Any]:
    confs = []
    for spec in layers:
        body = {k: v for k, v in spec.items() if k not in ("type", "variables")}
        if dialect == "wrapper":
            layer: dict[str, Any] = {spec["type"]: body}
        else:
            layer = {"@class": f"org.deeplearning4j.nn.conf.layers.{spec['type']}", **body}
        confs.append({"layer": layer, "variables": spec.get("variables", ["W", "b"])})
    return {"backpropType": "Standard", "confs": confs}


def _archive(tmp_path: Path, config: dict[str, Any], params: Any, **extra: bytes) -> Path:
    members = {
        "configuration.json": json.dumps(config).encode(),
        "coefficients.bin": nd4j_write(params),
        **extra,
    }
    return write_zip(tmp_path / "model.zip", members)


@pytest.mark.parametrize(
    ("dialect", "dense", "output"),
    [("wrapper", "dense", "output"), ("class", "DenseLayer", "OutputLayer")],
)
def test_both_json_dialects(tmp_path: Path, dialect: str, dense: str, output: str) -> None:
    config = _mln_config(
        [
            {"type": dense, "nin": 2, "nout": 3},
            {"type": "FancyNewLayer", "nin": 3, "nout": 3, "variables": ["gamma"]},
            {"type": output, "nin": 3, "nout": 1},
        ],
        dialect,
    )
    path = _archive(tmp_path, config, np.arange(1, 2 * 3 + 3 + 3 + 3 + 1 + 1, dtype=np.float32))
    net = read_model_serializer(path)
    assert [layer.type for layer in net.layers] == ["DenseLayer", "FancyNewLayer", "OutputLayer"]
    assert net.layers[1].param_layout is None  # unknown and not inferable: kept, not dropped
    assert net.expected_param_count is None
    with pytest.raises(LookupError, match="FancyNewLayer"):
        net.param_table()


def test_param_count_mismatch_is_an_error(tmp_path: Path) -> None:
    config = _mln_config([{"type": "DenseLayer", "nin": 4, "nout": 3}], "class")
    path = _archive(tmp_path, config, np.zeros(14, dtype=np.float32))
    with pytest.raises(LoadError, match=r"model\.zip: coefficients\.bin holds 14 parameters.*15"):
        read_model_serializer(path)


def test_model_type_mismatch_is_an_error(tmp_path: Path) -> None:
    config = _mln_config([{"type": "DenseLayer", "nin": 1, "nout": 1}], "class")
    path = _archive(tmp_path, config, np.zeros(2, dtype=np.float32))
    entry = make_entry(Format.DL4J, Framework.DL4J, ModelType.COMP_GRAPH)
    with pytest.raises(LoadError, match=r"declared COMP_GRAPH .* holds a MultiLayerNetwork"):
        load(entry, path)


def test_java_serialized_extras_are_listed_not_read(tmp_path: Path) -> None:
    config = _mln_config([{"type": "DenseLayer", "nin": 1, "nout": 1}], "class")
    evil = b"\xac\xed\x00\x05" + b"not to be deserialized"  # Java serialization magic
    path = _archive(tmp_path, config, np.zeros(2, dtype=np.float32), **{"normalizer.bin": evil})
    net = read_model_serializer(path)
    assert net.extra_entries == ("normalizer.bin",)


def test_graph_topological_order_follows_dl4j(tmp_path: Path) -> None:
    """Parameters follow DL4J's Kahn order (inputs, then vertices in config order)."""

    def dense(n_in: int, n_out: int) -> dict[str, Any]:
        layer = {"@class": "org.deeplearning4j.nn.conf.layers.DenseLayer"}
        return {
            "@class": "org.deeplearning4j.nn.conf.graph.LayerVertex",
            "layerConf": {"layer": {**layer, "nin": n_in, "nout": n_out}},
        }

    config = {
        "networkInputs": ["in"],
        "networkOutputs": ["out"],
        "vertices": {
            "out": dense(4, 1),
            "merge": {"@class": "org.deeplearning4j.nn.conf.graph.MergeVertex"},
            "a": dense(2, 2),
            "b": dense(2, 2),
        },
        "vertexInputs": {"out": ["merge"], "merge": ["a", "b"], "a": ["in"], "b": ["in"]},
    }
    n = (2 * 2 + 2) * 2 + 4 + 1
    net = read_model_serializer(_archive(tmp_path, config, np.arange(n, dtype=np.float64)))
    assert isinstance(net, ComputationGraph)
    assert [v.name for v in net.vertices] == ["a", "b", "merge", "out"]
    assert net.vertices[2].layer is None
    assert net.param_table()["out_b"].tolist() == [n - 1]


def test_cyclic_graph_is_an_error(tmp_path: Path) -> None:
    vertex = {"@class": "org.deeplearning4j.nn.conf.graph.MergeVertex"}
    config = {
        "networkInputs": ["in"],
        "vertices": {"a": vertex, "b": vertex},
        "vertexInputs": {"a": ["b"], "b": ["a"]},
    }
    with pytest.raises(LoadError, match="cycle"):
        read_model_serializer(_archive(tmp_path, config, np.zeros(1, np.float32)))


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"configuration.json": b"{}"}, "no coefficients.bin"),
        ({"coefficients.bin": b""}, "no configuration.json"),
        (
            {"configuration.json": b"{not json", "coefficients.bin": nd4j_write(np.zeros(1))},
            "configuration.json is not valid JSON",
        ),
        (
            {"configuration.json": b"{}", "coefficients.bin": nd4j_write(np.zeros(1))},
            "neither 'confs'",
        ),
    ],
)
def test_broken_archives(tmp_path: Path, members: dict[str, bytes], message: str) -> None:
    with pytest.raises(LoadError, match=message):
        read_model_serializer(write_zip(tmp_path / "model.zip", members))


# -- Nd4j.write streams -----------------------------------------------------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    array=hnp.arrays(
        dtype=st.sampled_from(["float32", "float64", "float16", "int32", "int64"]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
        elements={"allow_nan": False},
    ),
    mode=st.sampled_from(["HEAP", "DIRECT", "JAVACPP", "LONG_SHAPE", "MIXED_DATA_TYPES"]),
    order=st.sampled_from("cf"),
)
def test_nd4j_round_trip(array: Any, mode: str, order: str) -> None:
    data = nd4j_write(array, mode, order)
    stream = JavaStream(data, "coefficients.bin")
    got = read_nd4j_array(stream)
    assert stream.remaining == 0
    assert got.allocation_mode == mode
    assert got.shape_info.order == order
    assert got.array.dtype == array.dtype
    np.testing.assert_array_equal(got.array, array)


def test_forged_element_count_is_bounded() -> None:
    data = bytearray(nd4j_write(np.zeros(3, dtype=np.float32), "MIXED_DATA_TYPES"))
    # the data buffer's int64 element count follows the second "MIXED_DATA_TYPES" string
    idx = data.rfind(b"MIXED_DATA_TYPES") + len(b"MIXED_DATA_TYPES")
    data[idx : idx + 8] = (2**62).to_bytes(8, "big")
    with pytest.raises(ValueError, match=r"claims 4611686018427387904 FLOAT elements at offset"):
        read_nd4j_array(JavaStream(bytes(data), "coefficients.bin"))
