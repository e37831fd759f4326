"""A newcomer's first five minutes, fully offline: ``omnihub demo`` / ``python -m omnihub.demo``.

The demo builds a tiny zoo in a directory of its own -- an ONNX classifier made with
``onnx.helper``, a SameDiff FlatGraph written with ``flatbuffers`` and a DL4J
``MultiLayerNetwork`` zip written byte by byte -- serves it as a
``file://`` ``OMNIHUB_URL``, installs a compiled catalogue for it, and then goes through the
real runtime exactly as a user would: search with :class:`omnihub.Criteria`, download with
a progress bar (verified against the pinned sha256), load, print what was loaded, and
predict the species of three iris flowers with each model (``net.output(x)``,
``sd.output({...})``, onnxruntime). The models are not trained: their weights are set by hand
to a known decision tree (:mod:`omnihub.demo._iris`), so the demo checks every answer and
fails if one is wrong. A second load shows the cache hit. Nothing touches the network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TextIO

from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import CATALOG_FILENAME, Catalog, ModelEntry, catalog_to_json
from omnihub.demo._iris import CLASSES, FLOWERS, decision_tree
from omnihub.search import GENERATED_ROOT

__all__ = ["DEMO_PACKAGE", "build_zoo", "demo", "main", "run_demo"]

#: The generated package the demo installs its catalogue as.
DEMO_PACKAGE = "omnihub_demo"

#: Said wherever the demo models are described: they are not trained.
_UNTRAINED = "hand-set weights (not trained) implementing the two-split iris decision tree"


def _pinned(entry: ModelEntry, path: Path) -> ModelEntry:
    """``entry`` with the sha256 and size of the file just written, as a pinned zoo has."""
    import hashlib

    import attrs

    data = path.read_bytes()
    return attrs.evolve(entry, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def build_zoo(root: Path) -> list[ModelEntry]:
    """Write ``root/zoo`` (the model files) and ``root/site`` (their catalogue); return entries.

    The ONNX model needs the ``onnx`` package and the SameDiff one ``flatbuffers``; each is
    left out when its library is missing.
    """
    from omnihub.demo._zoo import (
        write_dl4j_mlp,
        write_onnx_mlp,
        write_samediff_mlp_file,
    )

    zoo, site = root / "zoo", root / "site"
    entries: list[ModelEntry] = []
    common: dict[str, Any] = {"namespace": "DemoModels", "package": DEMO_PACKAGE}
    if find_spec("onnx") is not None:
        onnx_file = zoo / "onnx" / "demo" / "iris_mlp.onnx"
        write_onnx_mlp(onnx_file)
        entry = ModelEntry(
            name="iris-mlp-onnx",
            python_name="iris_mlp_onnx",
            framework=Framework.ONNX,
            model_type=ModelType.COMP_GRAPH,
            format=Format.ONNX,
            documentation=f"A 4-2-3 iris classifier built with onnx.helper: {_UNTRAINED}.",
            file="demo/iris_mlp.onnx",
            tags=("demo", "tabular"),
            license="Apache-2.0",
            source="omnihub/demo/_zoo.py",
            **common,
        )
        entries.append(_pinned(entry, onnx_file))
    if find_spec("flatbuffers") is not None:
        samediff_file = zoo / "samediff" / "demo" / "iris_mlp.fb"
        write_samediff_mlp_file(samediff_file)
        entry = ModelEntry(
            name="iris-mlp-samediff",
            python_name="iris_mlp_samediff",
            framework=Framework.SAMEDIFF,
            model_type=ModelType.SAMEDIFF_PIPELINE,
            format=Format.SAMEDIFF,
            documentation=f"A 4-2-3 SameDiff FlatGraph written with flatbuffers: {_UNTRAINED}.",
            file="demo/iris_mlp.fb",
            tags=("demo", "tabular"),
            license="Apache-2.0",
            source="omnihub/demo/_samediff.py",
            **common,
        )
        entries.append(_pinned(entry, samediff_file))
    dl4j_file = zoo / "dl4j" / "demo" / "iris_mlp.zip"
    write_dl4j_mlp(dl4j_file)
    entry = ModelEntry(
        name="iris-mlp-dl4j",
        python_name="iris_mlp_dl4j",
        framework=Framework.DL4J,
        model_type=ModelType.SEQUENTIAL,
        format=Format.DL4J,
        documentation=f"A 4-2-3 DL4J MultiLayerNetwork written byte by byte: {_UNTRAINED}.",
        file="demo/iris_mlp.zip",
        tags=("demo", "tabular"),
        license="Apache-2.0",
        source="omnihub/demo/_zoo.py",
        **common,
    )
    entries.append(_pinned(entry, dl4j_file))
    package_dir = site / GENERATED_ROOT / DEMO_PACKAGE
    package_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(namespace="DemoModels", package=DEMO_PACKAGE, models=tuple(entries))
    (package_dir / CATALOG_FILENAME).write_text(catalog_to_json(catalog), encoding="utf-8")
    return entries


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _can_run() -> bool:
    """Whether the ``run`` extra (numpy, onnx) is installed, so the models can predict."""
    return find_spec("numpy") is not None and find_spec("onnx") is not None


def _summarize_onnx(model: Any, out: TextIO) -> Callable[[Any], Any]:
    graph = model.graph
    ops = " -> ".join(node.op_type for node in graph.node)
    params = sum(_size(init.dims) for init in graph.initializer)
    out.write(f"    onnx.ModelProto: graph {graph.name!r}, opset {model.opset_import[0].version}\n")
    out.write(
        f"    inputs {[i.name for i in graph.input]}, outputs {[o.name for o in graph.output]}\n"
    )
    out.write(f"    {len(graph.node)} nodes: {ops}; {params} parameters\n")
    if find_spec("onnxruntime") is not None:
        import importlib

        onnxruntime = importlib.import_module("onnxruntime")
        session = onnxruntime.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        out.write("    predicting with onnxruntime.InferenceSession(...).run(None, {'x': x}):\n")
        return lambda x: session.run(None, {"x": x})[0]
    from onnx.reference import ReferenceEvaluator

    evaluator: Any = ReferenceEvaluator(model)
    out.write("    predicting with onnx.reference.ReferenceEvaluator (onnxruntime missing):\n")
    return lambda x: evaluator.run(None, {"x": x})[0]


def _summarize_dl4j(network: Any, out: TextIO) -> Callable[[Any], Any]:
    out.write(
        f"    {type(network).__name__}: {len(network.layers)} layers, "
        f"{network.param_count} parameters ({network.params_data_type})\n"
    )
    for layer in network.layers:
        out.write(
            f"      layer {layer.name} {layer.layer_name or ''!s:8} {layer.type:12} "
            f"nIn={layer.n_in} nOut={layer.n_out}\n"
        )
    out.write("    predicting with net.output(x) (converted to ONNX, run by onnxruntime):\n")
    predict: Callable[[Any], Any] = network.output
    return predict


def _summarize_samediff(graph: Any, out: TextIO) -> Callable[[Any], Any]:
    weights = graph.weights
    params = sum(int(array.size) for array in weights.values())
    ops = " -> ".join(op.op_name for op in graph.ops)
    out.write(
        f"    SameDiffGraph: {len(graph.variables)} variables, {len(graph.ops)} ops, "
        f"{params} parameters in {sorted(weights)}\n"
    )
    out.write(f"    placeholders {list(graph.placeholders)}, outputs {list(graph.outputs)}\n")
    out.write(f"    ops: {ops}\n")
    out.write(
        "    predicting with sd.output({'input': x}) (converted to ONNX, run by onnxruntime):\n"
    )
    return lambda x: graph.output({"input": x})["probabilities"]


def _predict(predict: Callable[[Any], Any], out: TextIO) -> bool:
    """Classify the demo flowers; print each answer against the known one; all right?"""
    import numpy as np

    features = np.array([flower for flower, _ in FLOWERS], dtype=np.float32)
    probabilities = np.asarray(predict(features))
    right = True
    for (flower, species), row in zip(FLOWERS, probabilities, strict=True):
        answer = CLASSES[int(np.argmax(row))]
        expected = decision_tree(flower)
        verdict = "right" if answer == expected == species else "WRONG"
        right = right and verdict == "right"
        out.write(
            f"      {list(flower)} -> {answer:10} (probabilities {_rounded(row)};"
            f" expected {expected}, the flower is {species}) {verdict}\n"
        )
    return right


def _size(dims: Sequence[int]) -> int:
    total = 1
    for dim in dims:
        total *= dim
    return total


def _rounded(values: Any) -> list[float]:
    return [round(float(v), 4) for v in values]


# The demo is a script-like tour (build zoo, download, load, predict, check): linear, with one
# branch per step's failure message.
def run_demo(root: Path, out: TextIO = sys.stdout) -> int:  # noqa: PLR0912, PLR0915
    """Run the whole tour with everything under ``root``; return an exit code."""
    import omnihub
    from omnihub.cli._download import download_entries
    from omnihub.cli._output import format_size, print_table
    from omnihub.hub import fetch

    root = root.resolve()
    out.write(f"omnihub demo -- everything lives in {root}, nothing touches the network\n\n")
    entries = build_zoo(root)
    zoo, home, site = root / "zoo", root / "home", root / "site"
    out.write(f"1. built a zoo of {len(entries)} model file(s) in {zoo}:\n")
    for entry in entries:
        out.write(f"     {entry.framework.value}/{entry.file}  sha256 {entry.sha256}\n")
    out.write(f"   and installed their catalogue in {site / GENERATED_ROOT / DEMO_PACKAGE}\n\n")

    env = {
        "OMNIHUB_URL": zoo.as_uri(),
        "OMNIHUB_HOME": str(home),
        "OMNIHUB_OFFLINE": "0",
    }
    sys.path.insert(0, str(site))
    try:
        with _environment(env):
            out.write("2. the environment a user would set:\n")
            for key, value in env.items():
                out.write(f"     export {key}={value}\n")
            out.write(f"     export PYTHONPATH={site}\n\n")

            criteria = omnihub.Criteria(package=DEMO_PACKAGE, tags=("demo",))
            found = omnihub.list_models(criteria)
            out.write(
                f"3. omnihub.list_models(Criteria(package={DEMO_PACKAGE!r}, tags=('demo',))):\n"
            )
            out.flush()
            print_table(
                ("   NAME", "FRAMEWORK", "FORMAT", "SIZE"),
                [
                    (
                        f"   {e.package}.{e.python_name}",
                        e.framework.value,
                        e.format.value,
                        format_size(e.size),
                    )
                    for e in found
                ],
                out,
            )
            out.write(
                "\n4. downloading through the runtime (file:// zoo -> cache, sha256 verified):\n"
            )
            out.flush()
            _done, failed = download_entries(found, force=False, jobs=2, progress=True)
            if failed:
                return 1
            out.write(
                "\n5. loading each with omnihub.load(Criteria(...)) and classifying three iris"
                " flowers\n   (the models are not trained: their weights are set by hand to a"
                " known decision tree,\n   petal length < 2.45 cm: setosa; else petal width"
                " < 1.75 cm: versicolor; else virginica):\n"
            )
            wrong: list[str] = []
            for entry in found:
                started = time.perf_counter()
                model = omnihub.load(omnihub.Criteria(package=DEMO_PACKAGE, name=entry.name))
                elapsed = (time.perf_counter() - started) * 1000
                out.write(f"  {entry.name} ({elapsed:.0f} ms):\n")
                if entry.format is Format.ONNX:
                    predict = _summarize_onnx(model, out)
                elif entry.format is Format.SAMEDIFF:
                    predict = _summarize_samediff(model, out)
                else:
                    predict = _summarize_dl4j(model, out)
                if not _can_run():
                    out.write("    (pip install 'omnihub[run]' to predict with it)\n")
                elif not _predict(predict, out):
                    wrong.append(entry.name)
            out.write(
                "\n6. a second load is a cache hit: one stat, no copy, no hashing, no network:\n"
            )
            for entry in found:
                path = fetch(entry)
                out.write(f"     {entry.name} -> {path}\n")
    finally:
        sys.path.remove(str(site))
    if wrong:
        out.write(f"\nFAILED: {', '.join(wrong)} did not answer what their weights imply\n")
        return 1
    out.write(
        "\nnext: `omnihub list`, `omnihub info NAME`, `omnihub cache ls`, `omnihub doctor`"
        " (with the exports above to see the demo's zoo; `omnihub demo --dir DIR` keeps it);"
        " see docs/cli.md\n"
    )
    if _can_run():
        flowers = _write_flowers(root / "flowers.npy")
        out.write(
            f"and predict from the command line: `omnihub run {DEMO_PACKAGE}.iris_mlp_dl4j"
            f" --input {flowers}`; see docs/inference.md\n"
        )
    return 0


def _write_flowers(path: Path) -> Path:
    """Save the demo flowers as a ``float32`` ``.npy`` batch, for ``omnihub run``."""
    import numpy as np

    np.save(path, np.array([flower for flower, _ in FLOWERS], dtype=np.float32))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m omnihub.demo [--dir DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m omnihub.demo", description=__doc__)
    parser.add_argument("--dir", help="keep everything in DIR (default: a temporary directory)")
    args = parser.parse_args(argv)
    return demo(args.dir)


def demo(directory: str | None) -> int:
    """Run the demo in ``directory`` (kept) or in a temporary directory (removed after)."""
    if directory is not None:
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        return run_demo(root)
    root = Path(tempfile.mkdtemp(prefix="omnihub-demo-"))
    try:
        return run_demo(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
