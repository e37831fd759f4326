"""Bad input: truncated, bit-flipped and hostile files give a LoadError naming the file.

Hypothesis mutates copies of the real fixtures (in tmp_path) and of files written by the
formats' own libraries. Every outcome must be either a successful load or a
:class:`~omnihub.errors.LoadError` whose message names the file -- never another exception,
a hang (pytest-timeout), or an allocation the file size does not justify.
"""

from __future__ import annotations

import os
import stat
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import ModelEntry
from omnihub.errors import LoadError
from omnihub.loaders import load
from omnihub.loaders._zip import MAX_RATIO, SafeZip, _unsafe_name
from omnihub.loaders.samediff import SameDiffGraph

from tests.reliability.test_reliability_loaders import FLOAT8_FILE, _safetensors

from .helpers import make_entry, nd4j_write, shared_dir, write_zip
from .test_formats import write_gguf

SAMEDIFF_FILES = [
    "MLPMoonSD_Model_RANDOM_INIT_UNTRAINED.fb",
    "Cnn3dSynthetic_Model_RANDOM_INIT_UNTRAINED.fb",
    "RnnCsvSequenceClassification1_Model_RANDOM_INIT_UNTRAINED.fb",
]
DL4J_FILES = [
    "trained_iris_model.zip",
    "060_ModelSerializer_Regression_CG_LSTM_1.zip",
    "CustomLayerExample_100b6_half.bin",
    "SyntheticCNN_100b6.bin",
]
MUTATIONS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _fixture(kind: str, name: str) -> tuple[bytes, ModelEntry]:
    if kind == "samediff":
        entry = make_entry(Format.SAMEDIFF, file=name)
    else:
        entry = make_entry(Format.DL4J, Framework.DL4J, ModelType.SAMEDIFF_PIPELINE, file=name)
    return (shared_dir(kind) / name).read_bytes(), entry


def _load_or_load_error(entry: ModelEntry, path: Path) -> object | None:
    """Load ``path``; a LoadError must name the file. Returns the object or None."""
    try:
        return load(entry, path)
    except LoadError as exc:
        message = str(exc)
    assert str(path) in message
    return None


def _graph_signature(graph: SameDiffGraph) -> tuple[Any, ...]:
    return (graph.variables, graph.ops, graph.placeholders, graph.outputs)


@pytest.mark.parametrize(
    ("kind", "name"),
    [("samediff", n) for n in SAMEDIFF_FILES] + [("dl4j", n) for n in DL4J_FILES],
)
@MUTATIONS
@given(data=st.data())
def test_truncation(tmp_path: Path, kind: str, name: str, data: st.DataObject) -> None:
    original, entry = _fixture(kind, name)
    cut = data.draw(st.integers(0, len(original) - 1), label="length")
    path = tmp_path / name
    path.write_bytes(original[:cut])
    result = _load_or_load_error(entry, path)
    if result is not None:  # only trailing padding may go without consequence
        assert kind == "samediff"
        assert cut >= len(original) - 8
        reference = load(entry, shared_dir(kind) / name)
        assert isinstance(result, SameDiffGraph)
        assert isinstance(reference, SameDiffGraph)
        assert _graph_signature(result) == _graph_signature(reference)


@pytest.mark.parametrize(
    ("kind", "name"),
    [("samediff", n) for n in SAMEDIFF_FILES] + [("dl4j", n) for n in DL4J_FILES],
)
@MUTATIONS
@given(data=st.data())
def test_byte_flips(tmp_path: Path, kind: str, name: str, data: st.DataObject) -> None:
    original, entry = _fixture(kind, name)
    mutated = bytearray(original)
    flips = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(original) - 1), st.integers(1, 255)),
            min_size=1,
            max_size=4,
        ),
        label="flips",
    )
    for index, mask in flips:
        mutated[index] ^= mask
    path = tmp_path / name
    path.write_bytes(bytes(mutated))
    _load_or_load_error(entry, path)


def _mutate(original: bytes, data: st.DataObject) -> bytes:
    """``original`` truncated, or with one byte flipped (hypothesis draws which)."""
    if data.draw(st.booleans(), label="truncate"):
        return original[: data.draw(st.integers(0, len(original) - 1), label="length")]
    buffer = bytearray(original)
    buffer[data.draw(st.integers(0, len(original) - 1), label="index")] ^= data.draw(
        st.integers(1, 255), label="mask"
    )
    return bytes(buffer)


@MUTATIONS
@given(data=st.data())
def test_library_formats_mutated(tmp_path: Path, data: st.DataObject) -> None:
    """ONNX, SafeTensors and GGUF files written by their libraries, truncated or flipped."""
    import onnx
    from safetensors.numpy import save_file

    from .test_formats import _onnx_model

    fmt = data.draw(st.sampled_from([Format.ONNX, Format.SAFETENSORS, Format.GGUF]))
    source = tmp_path / f"source.{fmt.value}"
    if not source.exists():
        if fmt is Format.ONNX:
            onnx.save_model(_onnx_model(np.ones((3, 2), np.float32)), os.fspath(source))
        elif fmt is Format.SAFETENSORS:
            save_file({"w": np.arange(8, dtype=np.float32)}, os.fspath(source))
        else:
            write_gguf(source)
    original = source.read_bytes()
    mutated = _mutate(original, data)
    path = tmp_path / f"model.{fmt.value}"
    path.write_bytes(mutated)
    _load_or_load_error(make_entry(fmt), path)


# -- zip archives -------------------------------------------------------------------------------

DL4J_ENTRY = make_entry(Format.DL4J, Framework.DL4J, ModelType.SEQUENTIAL)


def _valid_members() -> dict[str, bytes]:
    config = (
        b'{"confs": [{"layer": {"@class": "org.deeplearning4j.nn.conf.layers.DenseLayer",'
        b' "nin": 1, "nout": 1}}]}'
    )
    return {
        "configuration.json": config,
        "coefficients.bin": nd4j_write(np.zeros(2, dtype=np.float32)),
    }


def test_valid_archive_loads(tmp_path: Path) -> None:
    """The baseline the hostile variants below differ from."""
    net = load(DL4J_ENTRY, write_zip(tmp_path / "ok.zip", _valid_members()))
    assert net.param_count == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../escape.txt", "'..' path component"),
        ("a/../../escape.txt", "'..' path component"),
        ("/etc/cron.d/evil", "absolute path"),
        ("C:/evil.txt", "absolute path"),
        ("dir\\..\\evil.txt", "backslash"),
    ],
)
def test_zip_slip_names_are_rejected(tmp_path: Path, name: str, reason: str) -> None:
    path = tmp_path / "slip.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in _valid_members().items():
            archive.writestr(member, content)
        archive.writestr(zipfile.ZipInfo(name), b"payload")
    with pytest.raises(LoadError, match=rf"slip\.zip: unsafe zip member name .*{reason}"):
        load(DL4J_ENTRY, path)


@settings(max_examples=60, deadline=None)
@given(segments=st.lists(st.sampled_from(["a", "b.txt", "..", ".", "dir", "x y"]), min_size=1))
def test_zip_member_names_rejected_iff_they_climb(segments: list[str]) -> None:
    """Relative names are accepted exactly when no component is '..'."""
    name = "/".join(segments)
    reason = _unsafe_name(name)
    assert (reason is not None) == (".." in segments)


def test_symlink_members_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in _valid_members().items():
            archive.writestr(member, content)
        info = zipfile.ZipInfo("normalizer.bin")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, b"/etc/passwd")
    with pytest.raises(LoadError, match=r"link\.zip: zip member 'normalizer\.bin' is a symbolic"):
        load(DL4J_ENTRY, path)


def test_duplicate_members_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dup.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate
        with zipfile.ZipFile(path, "w") as archive:
            for member, content in _valid_members().items():
                archive.writestr(member, content)
            archive.writestr("coefficients.bin", b"shadow")
    with pytest.raises(LoadError, match=r"dup\.zip: zip member 'coefficients\.bin' appears twice"):
        load(DL4J_ENTRY, path)


def _forge_central_size(path: Path, member: str, size: int) -> None:
    """Rewrite ``member``'s uncompressed size in the central directory (a forged header)."""
    data = bytearray(path.read_bytes())
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46 : pos + 46 + name_len] == member.encode():
            struct.pack_into("<I", data, pos + 24, size)
            path.write_bytes(bytes(data))
            return
        pos = data.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(f"{member} not in central directory")


def test_forged_ratio_size_bomb_is_rejected(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "bomb.zip", _valid_members())
    _forge_central_size(path, "coefficients.bin", 0xFFFF_FFF0)
    with pytest.raises(
        LoadError, match=rf"bomb\.zip: .*coefficients\.bin.*ratio above {MAX_RATIO}"
    ):
        load(DL4J_ENTRY, path)


def test_under_declared_size_does_not_inflate_more(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "short.zip", _valid_members())
    _forge_central_size(path, "coefficients.bin", 10)
    with pytest.raises(LoadError, match=r"short\.zip: .*coefficients\.bin"):
        load(DL4J_ENTRY, path)


def test_total_size_limit(tmp_path: Path) -> None:
    """Real deflate output of zeros (ratio ~1000:1) is legal per member, capped in total."""
    path = write_zip(tmp_path / "zeros.zip", {"a.bin": bytes(3 << 20), "b.bin": bytes(3 << 20)})
    with SafeZip(path) as archive:
        assert archive.names() == ("a.bin", "b.bin")
    with pytest.raises(LoadError, match=r"zeros\.zip: zip members declare more than 4194304"):
        SafeZip(path, max_total_size=4 << 20)


def _patch_central(path: Path, offset: int, fmt: str, value: int) -> None:
    """Overwrite a field of every central-directory header (offset from the signature)."""
    data = bytearray(path.read_bytes())
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        struct.pack_into(fmt, data, pos + offset, value)
        pos = data.find(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(data))


def test_unsupported_zip_version_is_a_load_error(tmp_path: Path) -> None:
    """A mangled "version needed to extract" makes zipfile raise NotImplementedError."""
    path = write_zip(tmp_path / "version.zip", _valid_members())
    _patch_central(path, 6, "<H", 250)
    with pytest.raises(LoadError, match=r"version\.zip: not a readable zip archive"):
        load(DL4J_ENTRY, path)


def test_encrypted_member_is_a_load_error(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "secret.zip", _valid_members())
    _patch_central(path, 8, "<H", 0x1)  # general-purpose flag bit 0: encrypted
    with pytest.raises(LoadError, match=r"secret\.zip: zip member '.*' is encrypted"):
        load(DL4J_ENTRY, path)


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04", b"PK\x05\x06" + bytes(18), b"\x00" * 100])
def test_not_a_zip(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "model.zip"
    path.write_bytes(data)
    with pytest.raises(LoadError, match=r"model\.zip"):
        load(DL4J_ENTRY, path)


# -- GGUF counts (issue 15 item 13) ----------------------------------------------------------------

GGUF_VALUES = st.one_of(
    st.sampled_from([0, 1, 2**31, 2**32, 3_000_000_000, 2**63, 10**19, 2**64 - 1]),
    st.integers(0, 2**64 - 1),
)


@pytest.mark.timeout(120)
@settings(MUTATIONS, max_examples=200)
@given(data=st.data())
def test_gguf_any_u64_written_into_the_header(tmp_path: Path, data: st.DataObject) -> None:
    """Any 8-byte value at any header offset (counts, lengths, dims): a load or a LoadError.

    The file (written by gguf.GGUFWriter) has string and float arrays, so forged element
    counts, string lengths, key/value and tensor counts and dimensions are all reachable.
    """
    import gguf

    source = tmp_path / "source.gguf"
    if not source.exists():
        writer = gguf.GGUFWriter(os.fspath(source), "llama")
        writer.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "a", "b"])
        writer.add_array("tokenizer.ggml.scores", [0.0, -1.0, -2.0, -3.0])
        writer.add_tensor("w", np.ones((2, 3), dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    original = source.read_bytes()
    header_end = original.index(b"\x01" + bytes(7) + b"w\x02") + 8 + 33  # end of tensor info
    mutated = bytearray(original)
    at = data.draw(st.integers(4, header_end - 8), label="offset")
    struct.pack_into("<Q", mutated, at, data.draw(GGUF_VALUES, label="value"))
    path = tmp_path / "model.gguf"
    path.write_bytes(bytes(mutated))
    _load_or_load_error(make_entry(Format.GGUF), path)


@MUTATIONS
@given(data=st.data())
def test_float8_safetensors_mutated(tmp_path: Path, data: st.DataObject) -> None:
    """A SafeTensors file with F8/BF16/F4 tensors (decoded or kept raw), truncated or flipped."""
    original = _safetensors(tmp_path / "source.safetensors", FLOAT8_FILE).read_bytes()
    mutated = _mutate(original, data)
    path = tmp_path / "model.safetensors"
    path.write_bytes(mutated)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an undecodable tensor's warning is not the point
        _load_or_load_error(make_entry(Format.SAFETENSORS), path)
