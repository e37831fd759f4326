"""The conversion benchmarks' model writers: what they write is what the DL4J loader reads."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnihub.loaders.dl4j import MultiLayerNetwork, read_model_serializer

from benchmarks.convert_models import mlp_param_count, shared_models, write_mlp


@settings(max_examples=15, deadline=None)
@given(widths=st.lists(st.integers(min_value=1, max_value=9), min_size=2, max_size=6))
def test_write_mlp_round_trips_through_the_dl4j_loader(
    widths: list[int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("mlp") / "m.zip"
    param_bytes = write_mlp(path, widths, seed=len(widths))
    network = read_model_serializer(path)
    assert isinstance(network, MultiLayerNetwork)
    assert param_bytes == 4 * mlp_param_count(widths) == network.params.nbytes
    assert network.param_count == network.expected_param_count
    assert [(layer.n_in, layer.n_out) for layer in network.layers] == list(pairwise(widths))
    assert network.layers[-1].type == "OutputLayer"
    assert all(layer.type == "DenseLayer" for layer in network.layers[:-1])
    assert network.params.dtype == np.float32
    assert 0 < float(np.abs(network.params).max()) < 10  # random, scaled, finite


def test_shared_models_are_model_files_once_each_largest_first() -> None:
    models = shared_models()
    names = [p.name for p in models]
    assert len(names) == len(set(names))
    assert not [n for n in names if "_Input_" in n or "_Output_" in n or n.endswith(".md")]
    sizes = [p.stat().st_size for p in models]
    assert sizes == sorted(sizes, reverse=True)
    for path in models:
        assert path.suffix == ".fb" or path.read_bytes()[:4] == b"PK\x03\x04"
    if models:  # the shared data is present
        assert any(isinstance(p, Path) and p.suffix == ".fb" for p in models)


def test_the_deep_network_mixes_layer_kinds_and_has_positive_variances(tmp_path: Path) -> None:
    from benchmarks.convert_models import deep_specs, write_network

    specs = deep_specs(10, 6)
    path = tmp_path / "deep.zip"
    param_bytes = write_network(path, specs, seed=3)
    network = read_model_serializer(path)
    assert [layer.type for layer in network.layers] == [kind for kind, *_ in specs]
    assert network.layers[-1].type == "OutputLayer"
    assert {"DenseLayer", "BatchNormalization", "ActivationLayer", "DropoutLayer"} <= {
        layer.type for layer in network.layers
    }
    assert network.param_count == network.expected_param_count == param_bytes // 4
    table = network.param_table()
    variances = [key for key in table if key.endswith("_var")]
    assert variances
    assert all(float(table[key].min()) >= 0.5 for key in variances)
