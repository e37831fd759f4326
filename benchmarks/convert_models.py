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
    "Spec",
    "deep_specs",
    "mlp_param_count",
    "mlp_specs",
    "shared_models",
    "synthetic_deep",
    "synthetic_large",
    "write_mlp",
    "write_network",
]

#: The read-only reference data beside the repository.
SHARED_DATA = REPO / ".." / "shared" / "data"
_DIRS = ("dl4j", "dl4j-inference", "samediff")
_ACTIVATIONS = ("ReLU", "TanH", "Sigmoid", "LReLU", "ELU", "Swish")


#: Layer kinds of the synthetic networks: (DL4J class, parameter keys).
_PARAMS = {
    "DenseLayer": ("W", "b"),
    "OutputLayer": ("W", "b"),
    "BatchNormalization": ("gamma", "beta", "mean", "var"),
    "ActivationLayer": (),
    "DropoutLayer": (),
}

#: One layer of a synthetic network: (DL4J class, nIn, nOut, activation).
Spec = tuple[str, int, int, str]


def mlp_param_count(widths: Sequence[int]) -> int:
    """Parameters of Dense layers ``widths[0] -> widths[1] -> ...`` (W and b each)."""
    return sum(a * b + b for a, b in itertools.pairwise(widths))


def _param_count(spec: Spec) -> int:
    kind, n_in, n_out, _ = spec
    if kind in ("DenseLayer", "OutputLayer"):
        return n_in * n_out + n_out
    return 4 * n_out if kind == "BatchNormalization" else 0


def _layer_json(spec: Spec, index: int) -> dict[str, object]:
    from omnihub.demo._zoo import dl4j_layer

    kind, n_in, n_out, activation = spec
    body = dl4j_layer(kind, n_in, n_out, activation, f"layer{index}")
    if kind == "BatchNormalization":
        body.update(eps=1e-5, decay=0.9, lockGammaBeta=False, useLogStd=False)
        del body["activationFn"]
    elif kind == "DropoutLayer":
        body.update(idropout={"@class": "org.deeplearning4j.nn.conf.dropout.Dropout", "p": 0.5})
        del body["activationFn"]
    return body


def write_network(path: Path, specs: Sequence[Spec], *, seed: int = 0) -> int:
    """Write a FLOAT MultiLayerNetwork of ``specs`` with random weights; return param bytes.

    Batch-normalization variances are made positive; everything else is N(0, 1/width).
    """
    import numpy as np
    from omnihub.demo._zoo import nd4j_row_vector_header

    configuration = {
        "backpropType": "Standard",
        "confs": [
            {
                "dataType": "FLOAT",
                "layer": _layer_json(spec, i),
                "seed": seed,
                "variables": list(_PARAMS[spec[0]]),
            }
            for i, spec in enumerate(specs)
        ],
        "dataType": "FLOAT",
        "inputPreProcessors": {},
    }
    counts = [_param_count(spec) for spec in specs]
    rng = np.random.default_rng(seed)
    scale = np.float32(1.0 / np.sqrt(max(max(n_in, n_out) for _, n_in, n_out, _ in specs)))
    params = rng.standard_normal(sum(counts), dtype=np.float32) * scale
    offset = 0
    for (kind, _, n_out, _), count in zip(specs, counts, strict=True):
        if kind == "BatchNormalization":  # gamma, beta, mean, var: var > 0
            variance = params[offset + 3 * n_out : offset + count]
            np.abs(variance, out=variance)
            variance += 0.5
        offset += count
    data = params.astype(">f4")
    del params
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("configuration.json", json.dumps(configuration, indent=1))
        with archive.open("coefficients.bin", "w", force_zip64=True) as member:
            member.write(nd4j_row_vector_header(data.size))
            member.write(memoryview(data).cast("B"))
    partial.replace(path)
    return int(data.nbytes)


def mlp_specs(widths: Sequence[int]) -> list[Spec]:
    """Dense layers (activations in turn) ``widths[0] -> ... ->`` a softmax OutputLayer."""
    last = len(widths) - 2
    return [
        (
            "OutputLayer" if i == last else "DenseLayer",
            n_in,
            n_out,
            "Softmax" if i == last else _ACTIVATIONS[i % len(_ACTIVATIONS)],
        )
        for i, (n_in, n_out) in enumerate(itertools.pairwise(widths))
    ]


def write_mlp(path: Path, widths: Sequence[int], *, seed: int = 0) -> int:
    """Write Dense layers (cycling activations) and a softmax OutputLayer; return param bytes."""
    return write_network(path, mlp_specs(widths), seed=seed)


def deep_specs(layers: int, width: int) -> list[Spec]:
    """``layers - 1`` layers cycling Dense, BatchNormalization, Activation, Dropout, then Output."""
    kinds = ("DenseLayer", "BatchNormalization", "ActivationLayer", "DropoutLayer")
    specs: list[Spec] = [
        (kinds[i % 4], width, width, _ACTIVATIONS[i % len(_ACTIVATIONS)]) for i in range(layers - 1)
    ]
    return [*specs, ("OutputLayer", width, 10, "Softmax")]


def _cached(name: str, specs: Sequence[Spec]) -> tuple[Path, int]:
    path = WORK / "convert" / f"{name}.zip"
    stamp = path.with_name(path.name + ".specs")
    wanted = json.dumps([list(spec) for spec in specs])
    if not (path.is_file() and stamp.is_file() and stamp.read_text() == wanted):
        write_network(path, specs)
        stamp.write_text(wanted)
    return path, 4 * sum(_param_count(spec) for spec in specs)


def synthetic_deep(layers: int = 50, width: int = 64) -> tuple[Path, int]:
    """A ``layers``-layer MultiLayerNetwork (:func:`deep_specs`); (path, param bytes)."""
    return _cached(f"deep{layers}x{width}", deep_specs(layers, width))


def synthetic_large(megabytes: int = 100) -> tuple[Path, int]:
    """A MultiLayerNetwork of about ``megabytes`` MB of FLOAT weights; (path, param bytes)."""
    width = 2048
    per_layer = (width * width + width) * 4
    count = max(1, round(megabytes * 1_000_000 / per_layer))
    return _cached(f"large{megabytes}mb", mlp_specs([width] * (count + 1)))


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
