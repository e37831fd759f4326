"""ONNX, SafeTensors and GGUF loaders, on files written by each format's own library."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omnihub._enums import Format, Framework
from omnihub.errors import LoadError
from omnihub.loaders import load
from omnihub.loaders.gguf_model import GGUFModel, read_gguf
from omnihub.loaders.onnx_model import read_onnx
from omnihub.loaders.safetensors_model import SafeTensorsWeights, read_safetensors

from .helpers import make_entry

# -- ONNX ---------------------------------------------------------------------------------------


def _onnx_model(weights: np.ndarray[Any, Any]) -> Any:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weights.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, weights.shape[1]])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_onnx_model(tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    weights = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "tiny.onnx"
    onnx.save_model(_onnx_model(weights), os.fspath(path))
    model = load(make_entry(Format.ONNX, Framework.ONNX), path)
    assert isinstance(model, onnx.ModelProto)
    assert [n.op_type for n in model.graph.node] == ["MatMul"]
    np.testing.assert_array_equal(numpy_helper.to_array(model.graph.initializer[0]), weights)


def test_onnx_external_data_is_read_from_beside_the_file(tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    weights = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    path = tmp_path / "big.onnx"
    onnx.save_model(
        _onnx_model(weights),
        os.fspath(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="big.onnx.data",
        size_threshold=0,
    )
    assert (tmp_path / "big.onnx.data").stat().st_size == weights.nbytes
    model = read_onnx(path)
    np.testing.assert_array_equal(numpy_helper.to_array(model.graph.initializer[0]), weights)


def _with_external_location(tmp_path: Path, location: str, length: int | None = None) -> Path:
    import onnx

    weights = np.ones((4, 4), dtype=np.float32)
    path = tmp_path / "m.onnx"
    onnx.save_model(
        _onnx_model(weights),
        os.fspath(path),
        save_as_external_data=True,
        location="m.data",
        size_threshold=0,
    )
    model = onnx.load_model(os.fspath(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
        if entry.key == "length" and length is not None:
            entry.value = str(length)
    onnx.save_model(model, os.fspath(path))
    return path


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("../outside.data", "must be a relative path inside"),
        ("/etc/passwd", "must be a relative path inside"),
        ("missing.data", "not a regular file"),
    ],
)
def test_onnx_external_data_cannot_escape(tmp_path: Path, location: str, message: str) -> None:
    (tmp_path.parent / "outside.data").write_bytes(bytes(64))
    path = _with_external_location(tmp_path, location)
    with pytest.raises(LoadError, match=message):
        read_onnx(path)


def test_onnx_external_data_symlink_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "link.data").symlink_to(tmp_path / "m.data")
    path = _with_external_location(tmp_path, "link.data")
    with pytest.raises(LoadError, match="not a regular file"):
        read_onnx(path)


def test_onnx_external_data_length_past_end(tmp_path: Path) -> None:
    path = _with_external_location(tmp_path, "m.data", length=10**9)
    with pytest.raises(LoadError, match="past the end of the 64-byte file"):
        read_onnx(path)


@pytest.mark.parametrize("data", [b"", b"\xff" * 100, b"not a protobuf"])
def test_onnx_garbage(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    with pytest.raises(LoadError, match=r"bad\.onnx"):
        read_onnx(path)


# -- SafeTensors --------------------------------------------------------------------------------


def test_safetensors_mapping(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    tensors: dict[str, np.ndarray[Any, Any]] = {
        "embed.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
        "head.bias": np.array([1, -2], dtype=np.int64),
        "scale": np.array(0.5, dtype=np.float16),
    }
    path = tmp_path / "model.safetensors"
    save_file(tensors, os.fspath(path), metadata={"format": "np"})
    weights = load(make_entry(Format.SAFETENSORS), path)
    assert isinstance(weights, SafeTensorsWeights)
    assert set(weights) == set(tensors)
    assert len(weights) == 3
    for name, array in tensors.items():
        assert weights[name].dtype == array.dtype
        np.testing.assert_array_equal(weights[name], array)
        assert not weights[name].flags.writeable
    assert weights.metadata == {"format": "np"}


def test_safetensors_header_lies_are_load_errors(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": np.zeros(4, np.float32)}, os.fspath(path))
    data = path.read_bytes()
    path.write_bytes((2**40).to_bytes(8, "little") + data[8:])  # header length past the end
    with pytest.raises(LoadError, match=r"model\.safetensors: not a readable safetensors"):
        read_safetensors(path)
    path.write_bytes(data[:-3])  # tensor data cut short
    with pytest.raises(LoadError, match=r"model\.safetensors"):
        read_safetensors(path)


# -- GGUF ---------------------------------------------------------------------------------------


def write_gguf(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    """A small GGUF file written with gguf.GGUFWriter; returns its tensors."""
    import gguf

    tensors = {
        "token_embd.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "output.bias": np.array([0.5, -1.5], dtype=np.float32),
    }
    writer = gguf.GGUFWriter(os.fspath(path), "llama")
    writer.add_name("tiny test model")
    writer.add_uint32("tiny.answer", 42)
    writer.add_array("tiny.tokens", ["<s>", "</s>", "hello"])
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return tensors


def test_gguf_metadata_and_tensors(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    tensors = write_gguf(path)
    model = load(make_entry(Format.GGUF), path)
    assert isinstance(model, GGUFModel)
    assert model.architecture == "llama"
    assert model.metadata["general.name"] == "tiny test model"
    assert model.metadata["tiny.answer"] == 42
    assert model.metadata["tiny.tokens"] == ["<s>", "</s>", "hello"]
    assert set(model.tensors) == set(tensors)
    for name, array in tensors.items():
        tensor = model.tensors[name]
        assert tensor.type == "F32"
        assert tensor.shape == tuple(reversed(array.shape))  # GGUF lists dims fastest-first
        np.testing.assert_array_equal(np.asarray(tensor.data).reshape(array.shape), array)


@pytest.mark.parametrize("data", [b"", b"GGUF", b"GGUF" + b"\xff" * 60, b"\x00" * 128])
def test_gguf_garbage(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    with pytest.raises(LoadError, match=r"bad\.gguf: not a readable GGUF"):
        read_gguf(path)
