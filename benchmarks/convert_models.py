"""Models for the conversion benchmarks: synthetic DL4J networks and the shared real files.

:func:`write_mlp` writes a DL4J ``MultiLayerNetwork`` zip the way ``ModelSerializer`` does
(``configuration.json`` in the 1.0 ``@class`` dialect, ``coefficients.bin`` as a big-endian
``Nd4j.write`` FLOAT row vector), with random weights from numpy, so a 100 MB network is
written in a second. Files are kept under benchmarks/_work/convert and reused between runs.
"""

from __future__ import annotations

import itertools
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.workload import REPO, WORK

__all__ = [
    "SHARED_DATA",
    "mlp_param_count",
    "shared_models",
    "synthetic_deep",
    "synthetic_large",
    "write_mlp",
]

#: The read-only reference data beside the repository.
SHARED_DATA = REPO / ".." / "shared" / "data"
_DIRS = ("dl4j", "dl4j-inference", "samediff")
_ACTIVATIONS = ("ReLU", "TanH", "Sigmoid", "LReLU", "ELU", "Swish")


def mlp_param_count(widths: Sequence[int]) -> int:
    """Parameters of Dense layers ``widths[0] -> widths[1] -> ...`` (W and b each)."""
    return sum(a * b + b for a, b in itertools.pairwise(widths))


def write_mlp(path: Path, widths: Sequence[int], *, seed: int = 0) -> int:
    """Write Dense layers (cycling activations) and a softmax OutputLayer; return param bytes."""
    import numpy as np
    from omnihub.demo._zoo import dl4j_layer, nd4j_row_vector_header

    last = len(widths) - 2
    layers = [
        dl4j_layer(
            "OutputLayer" if i == last else "DenseLayer",
            n_in,
            n_out,
            "Softmax" if i == last else _ACTIVATIONS[i % len(_ACTIVATIONS)],
            f"layer{i}",
        )
        for i, (n_in, n_out) in enumerate(itertools.pairwise(widths))
    ]
    configuration = {
        "backpropType": "Standard",
        "confs": [
            {"dataType": "FLOAT", "layer": layer, "seed": seed, "variables": ["W", "b"]}
            for layer in layers
        ],
        "dataType": "FLOAT",
        "inputPreProcessors": {},
    }
    count = mlp_param_count(widths)
    rng = np.random.default_rng(seed)
    scale = np.float32(1.0 / np.sqrt(max(widths)))
    params = (rng.standard_normal(count, dtype=np.float32) * scale).astype(">f4")
    header = nd4j_row_vector_header(count)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("configuration.json", json.dumps(configuration, indent=1))
        with archive.open("coefficients.bin", "w", force_zip64=True) as member:
            member.write(header)
            member.write(memoryview(params).cast("B"))
    partial.replace(path)
    return count * 4


def _cached_mlp(name: str, widths: Sequence[int]) -> tuple[Path, int]:
    path = WORK / "convert" / f"{name}.zip"
    stamp = path.with_name(path.name + ".widths")
    wanted = json.dumps(list(widths))
    if not (path.is_file() and stamp.is_file() and stamp.read_text() == wanted):
        write_mlp(path, widths)
        stamp.write_text(wanted)
    return path, mlp_param_count(widths) * 4


def synthetic_deep(layers: int = 50, width: int = 64) -> tuple[Path, int]:
    """A ``layers``-layer MultiLayerNetwork (``layers - 1`` Dense + Output); (path, param bytes)."""
    return _cached_mlp(f"deep{layers}x{width}", [width] * layers + [10])


def synthetic_large(megabytes: int = 100) -> tuple[Path, int]:
    """A MultiLayerNetwork of about ``megabytes`` MB of FLOAT weights; (path, param bytes)."""
    width = 2048
    per_layer = (width * width + width) * 4
    count = max(1, round(megabytes * 1_000_000 / per_layer))
    return _cached_mlp(f"large{megabytes}mb", [width] * (count + 1))


def _is_model(path: Path) -> bool:
    if "_Input_" in path.name or "_Output_" in path.name or path.suffix == ".md":
        return False
    if path.suffix == ".fb":
        return True
    with path.open("rb") as fh:
        return fh.read(4) == b"PK\x03\x04"  # DL4J ModelSerializer zips (.zip or .bin)


def shared_models() -> list[Path]:
    """Every model file under ../shared/data (DL4J zips and SameDiff .fb), largest first, once."""
    found: dict[str, Path] = {}  # by name: dl4j/ and dl4j-inference/ share some files
    for directory in _DIRS:
        if (SHARED_DATA / directory).is_dir():
            for path in sorted((SHARED_DATA / directory).iterdir()):
                if path.is_file() and _is_model(path):
                    found.setdefault(path.name, path)
    return sorted(found.values(), key=lambda p: (-p.stat().st_size, p.name))
