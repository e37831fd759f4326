"""DL4J parameter layouts of wrapper layers (Bidirectional, LastTimeStep) and the VAE."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omnihub.errors import LoadError
from omnihub.loaders._dl4j_layers import param_layout
from omnihub.loaders.dl4j import ComputationGraph, read_model_serializer

from .helpers import nd4j_write, shared_dir, write_zip

LAYERS = "org.deeplearning4j.nn.conf.layers"


def test_bidirectional_graph_params_are_split_and_checked() -> None:
    """The real Bidirectional(LSTM) + Bidirectional(SimpleRnn) graph: count checked, table split
    where DL4J's initialisation left its marks (LSTM forget-gate bias 1, all other biases 0)."""
    path = shared_dir("dl4j-inference") / "SyntheticBidirectionalRNNGraph_100b6.bin"
    net = read_model_serializer(path)
    assert isinstance(net, ComputationGraph)
    assert net.expected_param_count == net.param_count == 4515
    table = net.param_table()
    assert list(table) == [
        *(f"rnn1_{d}{p}" for d in "fb" for p in ("W", "RW", "b")),
        *(f"rnn2_{d}{p}" for d in "fb" for p in ("W", "RW", "b")),
        "out_W",
        "out_b",
    ]
    assert table["rnn1_fW"].shape == table["rnn1_bW"].shape == (10, 64)
    assert table["rnn1_bRW"].shape == (16, 64)
    assert table["rnn2_fRW"].shape == (16, 16)
    forget_bias = np.zeros(64, dtype=np.float32)
    forget_bias[16:32] = 1.0  # LSTM gate blocks: [input, forget, output, input-modulation]
    for key in ("rnn1_fb", "rnn1_bb"):
        np.testing.assert_array_equal(table[key], forget_bias)
    for key in ("rnn2_fb", "rnn2_bb", "out_b"):
        assert not table[key].any(), key
    for key in ("rnn1_fW", "rnn1_bRW", "rnn2_bW", "out_W"):
        assert np.count_nonzero(table[key]) == table[key].size, key


def _lstm(n_in: int, n_out: int) -> dict[str, Any]:
    return {"@class": f"{LAYERS}.LSTM", "nin": n_in, "nout": n_out}


def test_wrappers_take_the_wrapped_layout() -> None:
    assert param_layout("LastTimeStep", {"underlying": _lstm(3, 2)}) == [
        ("W", (3, 8), "f"),
        ("RW", (2, 8), "f"),
        ("b", (8,), "f"),
    ]
    legacy = {"underlying": {"gravesLSTM": {"nin": 1, "nout": 1}}}  # pre-1.0 wrapper dialect
    assert param_layout("MaskZeroLayer", legacy) == [
        ("W", (1, 4), "f"),
        ("RW", (1, 7), "f"),
        ("b", (4,), "f"),
    ]
    bidirectional = param_layout("Bidirectional", {"fwd": _lstm(3, 2), "bwd": _lstm(3, 2)})
    assert bidirectional is not None
    assert [name for name, _, _ in bidirectional] == ["fW", "fRW", "fb", "bW", "bRW", "bb"]
    # an unknown wrapped layer leaves the wrapper unknown, not empty
    assert (
        param_layout("Bidirectional", {"fwd": {"@class": "x.Custom"}, "bwd": _lstm(3, 2)}) is None
    )
    assert param_layout("LastTimeStep", {}) is None


def _vae(output_distribution: dict[str, Any]) -> dict[str, Any]:
    return {
        "nin": 5,
        "nout": 2,
        "encoderLayerSizes": [4, 3],
        "decoderLayerSizes": [3],
        "outputDistribution": output_distribution,
    }


@pytest.mark.parametrize(
    ("distribution", "n_dist"),
    [
        ({"@class": "org...variational.BernoulliReconstructionDistribution"}, 5),
        ({"@class": "org...variational.GaussianReconstructionDistribution"}, 10),
        ({"gaussian": {"activationFn": "identity"}}, 10),
        (
            {
                "@class": "org...variational.CompositeReconstructionDistribution",
                "distributionSizes": [2, 3],
                "reconstructionDistributions": [
                    {"@class": "org...GaussianReconstructionDistribution"},
                    {"@class": "org...BernoulliReconstructionDistribution"},
                ],
            },
            2 * 2 + 3,
        ),
    ],
)
def test_variational_autoencoder_layout(distribution: dict[str, Any], n_dist: int) -> None:
    layout = param_layout("VariationalAutoencoder", _vae(distribution))
    assert layout is not None
    assert [(name, shape) for name, shape, _ in layout] == [
        ("e0W", (5, 4)),
        ("e0b", (4,)),
        ("e1W", (4, 3)),
        ("e1b", (3,)),
        ("pZXMeanW", (3, 2)),
        ("pZXMeanb", (2,)),
        ("pZXLogStd2W", (3, 2)),
        ("pZXLogStd2b", (2,)),
        ("d0W", (2, 3)),
        ("d0b", (3,)),
        ("pXZW", (3, n_dist)),
        ("pXZb", (n_dist,)),
    ]


def test_variational_autoencoder_without_sizes_is_unknown() -> None:
    conf = _vae({"@class": "x.BernoulliReconstructionDistribution"})
    conf["decoderLayerSizes"] = []
    assert param_layout("VariationalAutoencoder", conf) is None


def _graph_archive(tmp_path: Path, layer: dict[str, Any], n_params: int) -> Path:
    config = {
        "networkInputs": ["in"],
        "networkOutputs": ["vae"],
        "vertexInputs": {"vae": ["in"]},
        "vertices": {
            "vae": {
                "@class": "org.deeplearning4j.nn.conf.graph.LayerVertex",
                "layerConf": {"layer": layer, "variables": []},
            }
        },
    }
    params = np.arange(n_params, dtype=np.float32)
    members = {
        "configuration.json": json.dumps(config).encode(),
        "coefficients.bin": nd4j_write(params),
    }
    return write_zip(tmp_path / "vae.zip", members)


def test_vae_archive_param_count_is_checked(tmp_path: Path) -> None:
    layer = {
        "@class": f"{LAYERS}.variational.VariationalAutoencoder",
        **_vae({"@class": "x.BernoulliReconstructionDistribution"}),
    }
    size = 5 * 4 + 4 + 4 * 3 + 3 + 2 * (3 * 2 + 2) + 2 * 3 + 3 + 3 * 5 + 5
    net = read_model_serializer(_graph_archive(tmp_path, layer, size))
    table = net.param_table()
    np.testing.assert_array_equal(table["vae_e0b"], np.arange(20, 24))
    np.testing.assert_array_equal(table["vae_pXZb"], np.arange(size - 5, size))
    assert table["vae_e0W"][1, 0] == 1  # 'f' order: rows change fastest
    with pytest.raises(LoadError, match=f"holds {size - 1} parameters.*needs {size}"):
        read_model_serializer(_graph_archive(tmp_path, layer, size - 1))
