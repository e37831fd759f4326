"""DL4J's forward-pass fixtures (``../shared/data/dl4j-inference``): model, input, output."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt
from omnihub.loaders._javastream import JavaStream, read_nd4j_array
from omnihub.loaders.dl4j import MultiLayerNetwork, read_model_serializer

from tests.loaders.helpers import shared_dir


class Tolerance(TypedDict):
    """Keyword arguments of ``np.testing.assert_allclose``."""

    rtol: float
    atol: float


#: rtol/atol for FLOAT and DOUBLE models (the issue's bound).
TOLERANCE = Tolerance(rtol=1e-4, atol=1e-5)
#: HALF: DL4J and onnxruntime both compute in float16 (11 significant bits, ulp 2^-13 at the
#: outputs' magnitude ~0.2) but round and accumulate in different orders, so results may
#: differ by a few ulps: 4 ulps relative (2^-8) plus 2 ulps absolute at 0.25 (2^-12).
HALF_TOLERANCE = Tolerance(rtol=2.0**-8, atol=2.0**-12)


def reference_output(model: Any, feeds: dict[str, npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """The first output of ``onnx.reference.ReferenceEvaluator`` on ``model``."""
    from onnx.reference import ReferenceEvaluator

    results: Any = ReferenceEvaluator(model).run(None, feeds)
    return np.asarray(results[0])


def load_mln(path: Path) -> MultiLayerNetwork:
    """A ModelSerializer zip that must hold a MultiLayerNetwork."""
    net = read_model_serializer(path)
    assert isinstance(net, MultiLayerNetwork), f"{path} is a {type(net).__name__}"
    return net


def fixture_dir() -> Path:
    """``../shared/data/dl4j-inference`` (skips when absent)."""
    return shared_dir("dl4j-inference")


def read_array(path: Path) -> npt.NDArray[Any]:
    """An ``Nd4j.write`` array file."""
    return np.asarray(read_nd4j_array(JavaStream(path.read_bytes(), path.name)).array)


def fixture(
    model: str, dtype: str | None = None
) -> tuple[Path, npt.NDArray[Any], npt.NDArray[Any]]:
    """(model path, stored input, stored output) of a fixture, e.g. ``("SyntheticCNN", None)``."""
    base = fixture_dir()
    suffix = "_100b6" + (f"_{dtype}" if dtype else "")
    return (
        base / f"{model}{suffix}.bin",
        read_array(base / f"{model}_Input{suffix}.bin"),
        read_array(base / f"{model}_Output{suffix}.bin"),
    )
