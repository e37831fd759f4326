"""Loader bad input (issue 15, items 13-16): every file here is written by the test.

- 13: GGUF metadata arrays with forged element counts (and the other counts of the header);
- 14: a DL4J ``coefficients.bin`` whose shape has a zero dimension beside a huge one;
- 15: SafeTensors files holding F8_E4M3/F8_E5M2 (and BF16, F4) tensors beside ordinary ones;
- 16: empty upstream SameDiff placeholders, and Git LFS pointer files given to every loader.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnihub._enums import Format, Framework, ModelType
from omnihub.errors import LoadError
from omnihub.loaders import load
from omnihub.loaders._gguf_check import MAX_ARRAY_ELEMENTS, MAX_ARRAY_NESTING
from omnihub.loaders._nd4j import ShapeInfoError, parse_shape_info
from omnihub.loaders._placeholders import EMPTY_UPSTREAM_TAG, upstream_placeholder_note
from omnihub.loaders.gguf_model import read_gguf
from omnihub.loaders.safetensors_model import (
    RawTensor,
    SafeTensorsWeights,
    UndecodedTensorWarning,
    read_safetensors,
)
from omnihub.loaders.samediff import SameDiffGraph, read_flatgraph

from tests.loaders.helpers import (
    Node,
    Var,
    build_flatgraph,
    java_utf,
    make_entry,
    nd4j_write,
    write_zip,
)
from tests.runtime.helpers import REPO, child_env

FILE_SCOPED = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# -- 13: GGUF forged counts ---------------------------------------------------------------------

F32, STRING, ARRAY = 6, 8, 9


def _gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _gguf(kvs: list[bytes], tensor_count: int = 0, tail: bytes = b"") -> bytes:
    """A GGUF v3 file: header, the given encoded key/values, then ``tail``."""
    return b"GGUF" + struct.pack("<IQQ", 3, tensor_count, len(kvs)) + b"".join(kvs) + tail


def _scores(count: int, values: int) -> bytes:
    """``tokenizer.ggml.scores``: an F32 array claiming ``count`` items, holding ``values``."""
    head = _gguf_string("tokenizer.ggml.scores") + struct.pack("<IIQ", ARRAY, F32, count)
    return head + np.arange(values, dtype="<f4").tobytes()


ARCH = _gguf_string("general.architecture") + struct.pack("<I", STRING) + _gguf_string("llama")


@pytest.mark.timeout(30)  # today's gguf reader loops (and allocates) for ever on it
def test_gguf_226_byte_file_with_forged_array_count(tmp_path: Path) -> None:
    """The issue's reproducer: a 226-byte file whose scores array claims 3e9..1e19 items."""
    for count in (3_000_000_000, 2**63, 10**19, 2**64 - 1):
        data = _gguf([ARCH, _scores(count, 28)])
        assert len(data) == 226
        path = tmp_path / "forged.gguf"
        path.write_bytes(data)
        with pytest.raises(LoadError, match=rf"forged\.gguf: .*claims {count} items"):
            read_gguf(path)


def _writer_file(path: Path) -> bytes:
    """A GGUF written by gguf.GGUFWriter with a scores array and one tensor."""
    import gguf

    writer = gguf.GGUFWriter(os.fspath(path), "llama")
    writer.add_array("tokenizer.ggml.scores", [float(i) for i in range(400)])
    writer.add_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(100)])
    writer.add_tensor("w", np.ones((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("key", ["tokenizer.ggml.scores", "tokenizer.ggml.tokens"])
def test_gguf_writer_file_with_forged_array_count(tmp_path: Path, key: str) -> None:
    original = _writer_file(tmp_path / "real.gguf")
    assert read_gguf(tmp_path / "real.gguf").metadata["tokenizer.ggml.scores"][399] == 399.0
    count_at = original.index(_gguf_string(key)) + len(_gguf_string(key)) + 8
    for count in (3_000_000_000, 10**19):
        forged = bytearray(original)
        struct.pack_into("<Q", forged, count_at, count)
        path = tmp_path / "forged.gguf"
        path.write_bytes(bytes(forged))
        with pytest.raises(LoadError, match=rf"forged\.gguf: .*{key}.*claims {count} items"):
            read_gguf(path)


@pytest.mark.timeout(60)
@FILE_SCOPED
@given(count=st.one_of(st.integers(0, 64), st.integers(0, 2**64 - 1)), held=st.integers(0, 40))
def test_gguf_array_count_is_bounded_by_the_bytes_left(
    tmp_path: Path, count: int, held: int
) -> None:
    """An F32 array (the last field) loads iff its count fits the bytes that follow."""
    path = tmp_path / "scores.gguf"
    path.write_bytes(_gguf([ARCH, _scores(count, held)]))
    if count <= held:
        scores = read_gguf(path).metadata["tokenizer.ggml.scores"]
        assert scores == [float(i) for i in range(count)]
    else:
        with pytest.raises(LoadError, match=r"scores\.gguf: .*claims"):
            read_gguf(path)


def _nested(depth: int) -> bytes:
    """A key whose value is ``depth`` arrays nested in one another, the innermost empty."""
    value = struct.pack("<IQ", F32, 0)
    for _ in range(depth - 1):
        value = struct.pack("<IQ", ARRAY, 1) + value
    return _gguf_string("nested") + struct.pack("<I", ARRAY) + value


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_gguf([ARCH], tail=b"") + b"", None),  # the baseline: loads
        (_gguf([ARCH, _gguf_string("s") + struct.pack("<IQ", STRING, 2**62)]), "claims"),
        (
            _gguf([ARCH, _gguf_string("a") + struct.pack("<IIQ", ARRAY, STRING, 10**12)]),
            "claims 1000000000000 items of at least 8 bytes",
        ),
        (
            _gguf(
                [
                    ARCH,
                    _gguf_string("tokenizer.ggml.tokens")
                    + struct.pack("<IIQ", ARRAY, STRING, 2)
                    + _gguf_string("<s>")
                    + struct.pack("<Q", 2**40)
                    + b"</s>",
                ]
            ),
            r"tokens'.*\[1\] at offset \d+ claims 1099511627776 bytes, only 4 left",
        ),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 10**18), "key/value count .* claims"),
        (_gguf([ARCH], tensor_count=10**15), "tensor count 1000000000000000"),
        (
            _gguf([ARCH], 1, _gguf_string("t") + struct.pack("<I", 1000) + bytes(64)),
            "1000 dimensions",
        ),
        (
            _gguf([ARCH], 1, _gguf_string("t") + struct.pack("<IQQIQ", 2, 2**40, 2**40, 0, 0)),
            "more elements than a",
        ),
        (_gguf([ARCH, _nested(MAX_ARRAY_NESTING + 1)]), "nested deeper"),
        (_gguf([ARCH, _gguf_string("x") + struct.pack("<I", 77)]), "unknown value type 77"),
    ],
)
def test_gguf_forged_header_fields(tmp_path: Path, data: bytes, message: str | None) -> None:
    path = tmp_path / "header.gguf"
    path.write_bytes(data)
    if message is None:
        assert read_gguf(path).architecture == "llama"
        return
    with pytest.raises(LoadError, match=rf"header\.gguf: not a readable GGUF file: .*{message}"):
        read_gguf(path)


def test_gguf_nested_arrays_within_the_limit_load(tmp_path: Path) -> None:
    path = tmp_path / "nested.gguf"
    path.write_bytes(_gguf([ARCH, _nested(MAX_ARRAY_NESTING)]))
    assert "nested" in read_gguf(path).metadata


def test_gguf_total_array_elements_are_capped(tmp_path: Path) -> None:
    """Counts that each fit the file but add up past the cap (the reader's cost per element)."""
    per_array = MAX_ARRAY_ELEMENTS // 2 + 1
    kvs = [
        _gguf_string(f"a{i}") + struct.pack("<IIQ", ARRAY, 0, per_array) + bytes(per_array)
        for i in range(2)
    ]
    path = tmp_path / "many.gguf"
    path.write_bytes(_gguf(kvs))
    with pytest.raises(LoadError, match=rf"more than {MAX_ARRAY_ELEMENTS} elements in total"):
        read_gguf(path)


# -- 14: DL4J shape with a zero dimension beside a huge one ------------------------------------


def _coefficients(shape: list[int]) -> bytes:
    """``Nd4j.write`` of an empty LONG_SHAPE array whose shape info declares ``shape``."""
    info = [len(shape), *shape, *([1] * len(shape)), 0, 1, ord("c")]
    out = java_utf("LONG_SHAPE") + struct.pack(">q", len(info)) + java_utf("LONG")
    out += b"".join(struct.pack(">q", v) for v in info)
    return out + java_utf("LONG_SHAPE") + struct.pack(">q", 0) + java_utf("FLOAT")


DENSE_CONFIG = json.dumps(
    {"confs": [{"layer": {"@class": "org.deeplearning4j.nn.conf.layers.DenseLayer"}}]}
).encode()


@pytest.mark.parametrize("shape", [[0, 2**62], [2**62, 0], [0, 2**31, 2**31], [3, 0, 2**47]])
def test_dl4j_zero_dimension_beside_a_huge_one(tmp_path: Path, shape: list[int]) -> None:
    path = write_zip(
        tmp_path / "model.zip",
        {"configuration.json": DENSE_CONFIG, "coefficients.bin": _coefficients(shape)},
    )
    entry = make_entry(Format.DL4J, Framework.DL4J, ModelType.SEQUENTIAL)
    with pytest.raises(
        LoadError,
        match=r"model\.zip: coefficients\.bin: shape info .*elements in its non-zero dimensions",
    ):
        load(entry, path)


def test_dl4j_empty_coefficients_still_load(tmp_path: Path) -> None:
    """A genuinely empty parameter vector ([1, 0], as DL4J writes it) is not refused."""
    path = write_zip(
        tmp_path / "model.zip",
        {
            "configuration.json": b'{"confs": []}',
            "coefficients.bin": nd4j_write(np.zeros((1, 0), np.float32), "LONG_SHAPE"),
        },
    )
    net = load(make_entry(Format.DL4J, Framework.DL4J, ModelType.SEQUENTIAL), path)
    assert net.param_count == 0  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(
    dims=st.lists(st.one_of(st.just(0), st.integers(1, 2**63 - 1), st.integers(1, 8)), max_size=6),
    budget=st.integers(0, 2**40),
)
def test_accepted_shapes_can_be_reshaped(dims: list[int], budget: int) -> None:
    """Whatever parse_shape_info accepts, numpy can build (no raw ValueError afterwards)."""
    values = [len(dims), *dims, *([1] * len(dims)), 0, 1, ord("c")]
    try:
        info = parse_shape_info(values, max_elements=budget)
    except ShapeInfoError:
        return
    assert info.length <= budget
    flat = np.broadcast_to(np.float64(0), (info.length,))  # a view: nothing is allocated
    assert flat.reshape(info.shape).shape == tuple(dims)


# -- 15: SafeTensors with float8 tensors ---------------------------------------------------------


def _safetensors(path: Path, tensors: dict[str, tuple[str, list[int], bytes]]) -> Path:
    """A .safetensors file per the format: u64 header length, JSON header, tensor bytes."""
    header: dict[str, Any] = {"__metadata__": {"source": "test"}}
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


#: 1.0, 2.0, -1.0, 0.0 in each format.
F8_E4M3 = bytes([0x38, 0x40, 0xB8, 0x00])
F8_E5M2 = bytes([0x3C, 0x40, 0xBC, 0x00])
BF16 = np.array([1.0, 2.0, -1.0, 0.0], "<f4").view("<u4").__rshift__(16).astype("<u2").tobytes()
FLOAT8_FILE = {
    "embed.weight": ("F32", [2, 3], np.arange(6, dtype="<f4").tobytes()),
    "q.weight": ("F8_E4M3", [2, 2], F8_E4M3),
    "k.weight": ("F8_E5M2", [4], F8_E5M2),
    "norm": ("BF16", [2, 2], BF16),
    "packed": ("F4", [4], bytes([0x21, 0x43])),
}


def test_safetensors_float8_tensors_do_not_sink_the_file(tmp_path: Path) -> None:
    pytest.importorskip("ml_dtypes")
    path = _safetensors(tmp_path / "f8.safetensors", FLOAT8_FILE)
    with pytest.warns(UndecodedTensorWarning, match=r"f8\.safetensors: 1 tensor.*'packed' \(F4"):
        weights = load(make_entry(Format.SAFETENSORS), path)
    assert isinstance(weights, SafeTensorsWeights)
    np.testing.assert_array_equal(weights["embed.weight"], np.arange(6).reshape(2, 3))
    assert str(weights["q.weight"].dtype) == "float8_e4m3fn"
    assert str(weights["k.weight"].dtype) == "float8_e5m2"
    assert str(weights["norm"].dtype) == "bfloat16"
    for name, shape in (("q.weight", (2, 2)), ("k.weight", (4,)), ("norm", (2, 2))):
        assert weights[name].shape == shape
        assert not weights[name].flags.writeable
        assert weights[name].astype(np.float32).ravel().tolist() == [1.0, 2.0, -1.0, 0.0]
    assert set(weights) == {"embed.weight", "q.weight", "k.weight", "norm"}
    assert weights.undecoded == {
        "packed": RawTensor(name="packed", dtype="F4", shape=(4,), data=bytes([0x21, 0x43]))
    }
    assert weights.metadata == {"source": "test"}


def test_safetensors_float8_kept_raw_without_ml_dtypes(tmp_path: Path) -> None:
    path = _safetensors(tmp_path / "f8.safetensors", FLOAT8_FILE)
    with pytest.warns(UndecodedTensorWarning, match=r"install ml_dtypes") as caught:
        weights = read_safetensors(path, use_ml_dtypes=False)
    assert "'q.weight' (F8_E4M3 [2, 2])" in str(caught[0].message)
    assert set(weights) == {"embed.weight"}
    assert weights.undecoded["q.weight"] == RawTensor(
        name="q.weight", dtype="F8_E4M3", shape=(2, 2), data=F8_E4M3
    )
    assert weights.undecoded["k.weight"].data == F8_E5M2
    assert weights.undecoded["norm"].data == BF16


def test_safetensors_plain_file_gives_no_warning(tmp_path: Path) -> None:
    path = _safetensors(tmp_path / "plain.safetensors", {"w": ("F16", [2], bytes(4))})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weights = read_safetensors(path)
    assert weights.undecoded == {}
    assert weights["w"].dtype == np.float16


# -- 16: empty upstream SameDiff placeholders and LFS pointers -----------------------------------


def test_samediff_upstream_placeholder_is_refused(tmp_path: Path) -> None:
    """The zoo's bvlcalexnet-12.fb layout: one input placeholder with a 1x3x224x224 array."""
    example = np.zeros((1, 3, 224, 224), dtype=np.float32)
    path = tmp_path / "bvlcalexnet-12.fb"
    path.write_bytes(build_flatgraph([Var("input", 3, -1, array=example)], placeholders=["input"]))
    assert 602_112 < path.stat().st_size < 602_112 + 1024  # the real file is 602,496 bytes
    with pytest.raises(
        LoadError,
        match=r"bvlcalexnet-12\.fb: an empty upstream placeholder, not a model: .*only "
        r"placeholder 'input' \(FLOAT \[1, 3, 224, 224\]\)",
    ):
        load(make_entry(Format.SAMEDIFF), path)


def test_samediff_graph_without_anything_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.fb"
    path.write_bytes(build_flatgraph([]))
    with pytest.raises(LoadError, match=r"empty\.fb: an empty upstream placeholder.*no variables"):
        read_flatgraph(path)


def test_samediff_graphs_with_weights_or_ops_still_load(tmp_path: Path) -> None:
    """Weights without ops (a parameter file), or ops without weights, are not placeholders."""
    weights_only = tmp_path / "weights.fb"
    weights_only.write_bytes(build_flatgraph([Var("w", 0, -2, array=np.ones(3, np.float32))]))
    assert set(read_flatgraph(weights_only).weights) == {"w"}
    ops_only = tmp_path / "ops.fb"
    ops_only.write_bytes(
        build_flatgraph(
            [Var("x", 3, -1, shape=(2,)), Var("y", 2, 1)],
            [Node(1, "relu", "relu", ((-1, 0),), ("y",))],
            placeholders=["x"],
        )
    )
    graph = read_flatgraph(ops_only)
    assert isinstance(graph, SameDiffGraph)
    assert [op.op_name for op in graph.ops] == ["relu"]


OID = "120987f064caf13c6176621b45972d392953eda01031ad45b85b41d1f1385372"
POINTER = f"version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 602496\n"
LOADER_ENTRIES = {
    "model.fb": make_entry(Format.SAMEDIFF),
    "model.zip": make_entry(Format.DL4J, Framework.DL4J, ModelType.SEQUENTIAL),
    "model.onnx": make_entry(Format.ONNX, Framework.ONNX),
    "model.safetensors": make_entry(Format.SAFETENSORS),
    "model.gguf": make_entry(Format.GGUF),
}


@pytest.mark.parametrize("name", sorted(LOADER_ENTRIES))
def test_lfs_pointer_gets_its_own_message_in_every_loader(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(POINTER)
    with pytest.raises(LoadError) as caught:
        load(LOADER_ENTRIES[name], path)
    message = str(caught.value)
    assert message.startswith(f"{path}: a Git LFS pointer file, not the ")
    assert f"oid sha256:{OID}, size 602496 bytes" in message


@FILE_SCOPED
@given(rest=st.binary(max_size=300), name=st.sampled_from(sorted(LOADER_ENTRIES)))
def test_anything_starting_like_a_pointer_is_named_a_pointer(
    tmp_path: Path, rest: bytes, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"version https://git-lfs" + rest)
    with pytest.raises(LoadError, match=r"a Git LFS pointer file"):
        load(LOADER_ENTRIES[name], path)


# -- 16: the CLI marks the known empty upstream files --------------------------------------------

ZOO_PLACEHOLDERS = {
    "bvlcalexnet-12.fb",
    "caffenet-12.fb",
    "version-RFB-320.fb",
    "version-RFB-640.fb",
}


def test_placeholder_hashes_are_exactly_the_four_zoo_files() -> None:
    """The hashes the CLI marks are those the zoo catalogue gives the four placeholder files."""
    catalog = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    catalog = catalog / "omnihub-zoo-catalog.json"
    if not catalog.is_file():
        pytest.skip(f"reference data {catalog} is absent")
    models = json.loads(catalog.read_text())["models"]
    marked = {m["file"] for m in models if upstream_placeholder_note(m["sha256"]) is not None}
    assert marked == ZOO_PLACEHOLDERS
    assert all(m["size"] < 4_000_000 for m in models if m["file"] in marked)


def _omnihub(tmp_path: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "omnihub", *args],
        capture_output=True,
        text=True,
        env=child_env({"OMNIHUB_HOME": str(tmp_path / "home")}),
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_list_and_info_mark_empty_upstream_models(tmp_path: Path) -> None:
    """With the generated zoo catalogue installed: the four are marked, nothing else is."""
    rows = _omnihub(tmp_path, "list", "--framework", "samediff").splitlines()[1:]
    marked = {row.split()[0] for row in rows if EMPTY_UPSTREAM_TAG in row}
    assert marked == {
        "samediff.bvlcalexnet_12",
        "samediff.caffenet_12",
        "samediff.version_rfb_320",
        "samediff.version_rfb_640",
    }
    info = _omnihub(tmp_path, "info", "samediff.caffenet_12")
    assert "warning     empty upstream placeholder: the published file holds only an input" in info
    assert "warning" not in _omnihub(tmp_path, "info", "samediff.gpt2")
    listed = json.loads(_omnihub(tmp_path, "list", "--json", "--framework", "samediff"))
    warned = {m["qualified_name"] for m in listed if "warning" in m}
    assert warned == marked
