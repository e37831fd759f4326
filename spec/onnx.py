"""The ONNX Model Zoo, as listed by onnx.hub's manifest (184 models).

The models are data: ``onnx_manifest.json`` beside this file holds the zoo's manifest
entries in onnx.hub's own shape (``model``, ``model_path``, ``onnx_version``,
``opset_version``, ``metadata.model_sha``/``model_bytes``/``tags``; taken from
github.com/onnx/models ``ONNX_HUB_MANIFEST.json``), so updating the zoo is replacing
entries, not editing code. Every problem with an entry is reported at it, e.g.
``spec/onnx_manifest.json:557: entry 37 (model 'DenseNet-121-12-int8', opset_version 12): ...``.

Naming rule for one model at several opsets: a model whose Python name (the DSL's rule) is
shared by several manifest entries gets ``_opset<N>`` appended to each, e.g. ``AlexNet`` at
opsets 3, 6, 7, 8, 9 and 12 becomes ``alex_net_opset3`` ... ``alex_net_opset12``; a model
listed once keeps its plain name (``bi_daf``).
"""

from __future__ import annotations

from collections import Counter

from omnihub_compiler.dsl import (
    REPOSITORY_BASE_URLS,
    Framework,
    ModelType,
    NamespaceBuilder,
    framework_namespace,
)
from omnihub_compiler.manifest import ManifestEntry
from omnihub_compiler.naming import python_name

ONNX_MODEL_ZOO = "onnx-model-zoo"


def _names(entries: list[ManifestEntry]) -> list[str]:
    base = [python_name(entry.text("model")) for entry in entries]
    shared = Counter(base)
    return [
        f"{name}_opset{entry.integer('opset_version')}" if shared[name] > 1 else name
        for name, entry in zip(base, entries, strict=True)
    ]


@framework_namespace("OnnxModels", package="onnx")
def onnx(ns: NamespaceBuilder) -> None:
    base_url = REPOSITORY_BASE_URLS[ONNX_MODEL_ZOO]
    entries = ns.manifest("onnx_manifest.json", label=("model", "opset_version"))
    for entry, name in zip(entries, _names(entries), strict=True):
        with ns.at(entry):
            model, path = entry.text("model"), entry.text("model_path")
            opset, onnx_version = entry.integer("opset_version"), entry.text("onnx_version")
            metadata = entry.object("metadata")
            tags = metadata.texts("tags")
            ns.model(
                model,
                documentation=(
                    f"{model} from the ONNX Model Zoo (opset {opset}, ONNX {onnx_version}).\n\n"
                    f"Tags: {', '.join(tags)}.\nSource: github.com/onnx/models/{path}"
                ),
                url=base_url + path,
                framework=Framework.ONNX,
                model_type=ModelType.COMP_GRAPH,
                repository=ONNX_MODEL_ZOO,
                sha256=metadata.text("model_sha"),
                size=metadata.integer("model_bytes"),
                tags=tags,
                python_name=name,
                metadata={"opset": opset, "onnx_version": onnx_version},
            )
