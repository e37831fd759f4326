"""Writing DL4J MultiLayerNetworks for tests: configuration JSON + parameters, as DL4J does.

Each layer is given as its ``@class`` simple name, its JSON fields, and its parameters *in
DL4J's storage order*, each with the order DL4J flattens it in (``'f'`` for dense weights,
``'c'`` for biases and convolution kernels). :func:`write_mln` concatenates them into the
flat ``coefficients.bin`` vector (``Nd4j.write``) and zips it with ``configuration.json``,
independently of the loader's own layout table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from tests.loaders.helpers import nd4j_write, write_zip

__all__ = ["Layer", "Param", "layer", "write_mln"]

_PACKAGES = {
    "FrozenLayer": "misc.",
    "FrozenLayerWithBackprop": "misc.",
    "Cropping1D": "convolutional.",
    "Cropping2D": "convolutional.",
    "Cropping3D": "convolutional.",
}
_ND4J_DTYPES = {"float32": "FLOAT", "float64": "DOUBLE", "float16": "HALF"}


@attrs.frozen
class Param:
    """One parameter: DL4J key, array (in its logical shape), flattening order."""

    key: str
    array: npt.NDArray[Any]
    order: str = "c"


@attrs.frozen
class Layer:
    """A layer to write: simple class name, JSON fields, parameters in storage order."""

    cls: str
    fields: Mapping[str, Any]
    params: tuple[Param, ...] = ()


def layer(cls: str, params: Sequence[Param] = (), /, **fields: Any) -> Layer:
    """``Layer(cls, fields, params)`` with keyword fields."""
    return Layer(cls, fields, tuple(params))


def _layer_json(item: Layer, index: int) -> dict[str, Any]:
    package = "org.deeplearning4j.nn.conf.layers." + _PACKAGES.get(item.cls, "")
    body: dict[str, Any] = {"@class": package + item.cls, "layerName": f"layer{index}"}
    body.update(item.fields)
    return body


def write_mln(
    path: Path,
    layers: Sequence[Layer],
    dtype: npt.DTypeLike = np.float32,
    preprocessors: Mapping[int, Mapping[str, Any]] | None = None,
) -> Path:
    """A ModelSerializer zip of a MultiLayerNetwork (1.0 JSON dialect) at ``path``."""
    dt = np.dtype(dtype)
    pre = {
        str(i): {"@class": f"org.deeplearning4j.nn.conf.preprocessor.{p['cls']}", **p["fields"]}
        for i, p in (preprocessors or {}).items()
    }
    config = {
        "backpropType": "Standard",
        "dataType": _ND4J_DTYPES[dt.name],
        "inputPreProcessors": pre,
        "confs": [
            {
                "dataType": _ND4J_DTYPES[dt.name],
                "layer": _layer_json(item, i),
                "variables": [p.key for p in item.params],
            }
            for i, item in enumerate(layers)
        ],
    }
    chunks = [
        p.array.astype(dt).reshape(-1, order="F" if p.order == "f" else "C")
        for item in layers
        for p in item.params
    ]
    flat = np.concatenate(chunks) if chunks else np.zeros(0, dt)
    return write_zip(
        path,
        {
            "configuration.json": json.dumps(config).encode(),
            "coefficients.bin": nd4j_write(flat.reshape(1, -1)),
        },
    )
