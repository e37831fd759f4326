"""The spec DSL: DL4J omnihub's Kotlin DSL, one construct for one, in typed Python.

Kotlin::

    FrameworkNamespace("SameDiffModels") {
        SameDiffModel(name = "resnet18", documentation = "...", url = "...")
    }

Python (a spec file in spec/)::

    from omnihub_compiler.dsl import NamespaceBuilder, framework_namespace

    @framework_namespace("SameDiffModels", package="samediff")
    def samediff(ns: NamespaceBuilder) -> None:
        ns.samediff_model("resnet18", documentation="...", url="...")

The decorated function plays the Kotlin receiver lambda (``NamespaceModels.() -> Unit``):
its typed first parameter is the receiver, so mypy checks every call. The builder methods
only *record* definitions, with the ``spec/<file>.py:<line>`` they came from; the compiler
validates them all afterwards (:mod:`omnihub_compiler.validate`) and reports every error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import Any

import attrs
from omnihub import DEFAULT_OMNIHUB_URL, Format, Framework, ModelType

__all__ = [
    "DEFAULT_OMNIHUB_URL",
    "HUGGING_FACE",
    "REPOSITORY_BASE_URLS",
    "Format",
    "Framework",
    "FrameworkNamespace",
    "ModelDefinition",
    "ModelType",
    "NamespaceBuilder",
    "framework_namespace",
]

#: The repository name of the Hugging Face Hub (ADR 0076), the default for GGUF/SafeTensors.
HUGGING_FACE = "huggingface"

#: Base URLs of named repositories other than the omnihub zoo. A model whose ``repository``
#: is listed here must have its ``url`` under that base; its catalogue ``file`` is the rest
#: of the URL path (so the cache keeps the repository's layout). The omnihub zoo itself
#: ("omnihub" or None) uses ``DEFAULT_OMNIHUB_URL/<framework>/``.
REPOSITORY_BASE_URLS: Mapping[str, str] = {
    "onnx-model-zoo": "https://github.com/onnx/models/raw/main/",
}

#: Scalar types allowed as metadata values (JSON-representable).
MetadataValue = str | int | float | bool


@attrs.frozen(kw_only=True)
class ModelDefinition:
    """One model exactly as the spec declared it (unvalidated) and where it was declared."""

    kind: str  # the DSL method: "samediff_model", "dl4j_model", "model", "gguf_model", ...
    name: object
    documentation: object
    framework: object
    model_type: object
    format: object
    url: object = None
    hugging_face_id: object = None
    file_pattern: object = None
    pretrained: object = True
    repository: object = None
    revision: object = None
    sha256: object = None
    size: object = None
    license: object = None
    tags: object = ()
    python_name: object = None
    factory: object = None
    metadata: object = None
    file: str  # "spec/<file>.py" as shown in messages and the catalogue
    line: int

    @property
    def location(self) -> str:
        """``spec/<file>.py:<line>``."""
        return f"{self.file}:{self.line}"


def _caller_location(known_files: Mapping[str, str]) -> tuple[str, int]:
    """The innermost calling frame that lies in a spec file: (display path, line)."""
    first = sys._getframe(2)
    frame: FrameType | None = first
    while frame is not None:
        shown = known_files.get(frame.f_code.co_filename)
        if shown is not None:
            return shown, frame.f_lineno
        frame = frame.f_back
    return first.f_code.co_filename, first.f_lineno


class NamespaceBuilder:
    """The receiver of a ``@framework_namespace`` function (Kotlin's ``NamespaceModels``).

    Each method mirrors one Kotlin model constructor and appends a :class:`ModelDefinition`.
    Positional ``name, documentation, url`` follow the Kotlin parameter order; everything
    else is keyword-only. The extras beyond DL4J (``sha256``, ``size``, ``license``,
    ``tags``, ``python_name``, ``factory``, ``repository``, ``revision``, ``metadata``) are
    accepted by every method.
    """

    def __init__(self, namespace: FrameworkNamespace, known_files: Mapping[str, str]) -> None:
        self.namespace = namespace
        self.models: list[ModelDefinition] = []
        self._known_files = known_files

    def _add(self, kind: str, **fields: Any) -> None:
        file, line = _caller_location(self._known_files)
        self.models.append(ModelDefinition(kind=kind, file=file, line=line, **fields))

    def samediff_model(
        self,
        name: str,
        documentation: str,
        url: str,
        pretrained: bool = True,
        *,
        sha256: str | None = None,
        size: int | None = None,
        license: str | None = None,
        tags: Iterable[str] = (),
        python_name: str | None = None,
        factory: str | None = None,
        repository: str | None = None,
        revision: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> None:
        """Kotlin ``SameDiffModel``: a SameDiff graph (framework SAMEDIFF, COMP_GRAPH)."""
        self._add(
            "samediff_model",
            name=name,
            documentation=documentation,
            url=url,
            pretrained=pretrained,
            framework=Framework.SAMEDIFF,
            model_type=ModelType.COMP_GRAPH,
            format=Format.SAMEDIFF,
            sha256=sha256,
            size=size,
            license=license,
            tags=tags,
            python_name=python_name,
            factory=factory,
            repository=repository,
            revision=revision,
            metadata=metadata,
        )

    def dl4j_model(
        self,
        name: str,
        documentation: str,
        url: str,
        pretrained: bool = True,
        *,
        model_type: ModelType,
        sha256: str | None = None,
        size: int | None = None,
        license: str | None = None,
        tags: Iterable[str] = (),
        python_name: str | None = None,
        factory: str | None = None,
        repository: str | None = None,
        revision: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> None:
        """Kotlin ``DL4JModel``: a ModelSerializer zip (model_type COMP_GRAPH or SEQUENTIAL)."""
        self._add(
            "dl4j_model",
            name=name,
            documentation=documentation,
            url=url,
            pretrained=pretrained,
            framework=Framework.DL4J,
            model_type=model_type,
            format=Format.DL4J,
            sha256=sha256,
            size=size,
            license=license,
            tags=tags,
            python_name=python_name,
            factory=factory,
            repository=repository,
            revision=revision,
            metadata=metadata,
        )

    def model(
        self,
        name: str,
        documentation: str,
        url: str,
        pretrained: bool = True,
        *,
        framework: Framework,
        model_type: ModelType = ModelType.COMP_GRAPH,
        format: Format | None = None,
        sha256: str | None = None,
        size: int | None = None,
        license: str | None = None,
        tags: Iterable[str] = (),
        python_name: str | None = None,
        factory: str | None = None,
        repository: str | None = None,
        revision: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> None:
        """Kotlin ``Model``: any framework; ``format`` defaults to the framework's own."""
        self._add(
            "model",
            name=name,
            documentation=documentation,
            url=url,
            pretrained=pretrained,
            framework=framework,
            model_type=model_type,
            format=format,
            sha256=sha256,
            size=size,
            license=license,
            tags=tags,
            python_name=python_name,
            factory=factory,
            repository=repository,
            revision=revision,
            metadata=metadata,
        )

    def gguf_model(
        self,
        name: str,
        documentation: str,
        hugging_face_id: str,
        file_pattern: str = "*.gguf",
        pretrained: bool = True,
        *,
        repository: str | None = HUGGING_FACE,
        revision: str | None = None,
        sha256: str | None = None,
        size: int | None = None,
        license: str | None = None,
        tags: Iterable[str] = (),
        python_name: str | None = None,
        factory: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> None:
        """Kotlin ``GGUFModel``: a GGUF file on the Hugging Face Hub (SAMEDIFF_PIPELINE)."""
        self._add(
            "gguf_model",
            name=name,
            documentation=documentation,
            hugging_face_id=hugging_face_id,
            file_pattern=file_pattern,
            pretrained=pretrained,
            framework=Framework.SAMEDIFF,
            model_type=ModelType.SAMEDIFF_PIPELINE,
            format=Format.GGUF,
            repository=repository,
            revision=revision,
            sha256=sha256,
            size=size,
            license=license,
            tags=tags,
            python_name=python_name,
            factory=factory,
            metadata=metadata,
        )

    def safetensors_model(
        self,
        name: str,
        documentation: str,
        hugging_face_id: str,
        file_pattern: str = "*.safetensors",
        pretrained: bool = True,
        *,
        repository: str | None = HUGGING_FACE,
        revision: str | None = None,
        sha256: str | None = None,
        size: int | None = None,
        license: str | None = None,
        tags: Iterable[str] = (),
        python_name: str | None = None,
        factory: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> None:
        """Kotlin ``SafeTensorsModel``: SafeTensors weights on the Hugging Face Hub."""
        self._add(
            "safetensors_model",
            name=name,
            documentation=documentation,
            hugging_face_id=hugging_face_id,
            file_pattern=file_pattern,
            pretrained=pretrained,
            framework=Framework.SAMEDIFF,
            model_type=ModelType.SAMEDIFF_PIPELINE,
            format=Format.SAFETENSORS,
            repository=repository,
            revision=revision,
            sha256=sha256,
            size=size,
            license=license,
            tags=tags,
            python_name=python_name,
            factory=factory,
            metadata=metadata,
        )


@attrs.frozen(kw_only=True, eq=False)
class FrameworkNamespace:
    """Kotlin ``FrameworkNamespace(name) { ... }``: what ``@framework_namespace`` returns.

    ``name`` is the namespace (and generated class) name, e.g. ``SameDiffModels``;
    ``package`` the generated package ``omnihub_generated.<package>``; ``build`` the
    decorated function, run by the compiler with a fresh :class:`NamespaceBuilder`.
    """

    name: str
    package: str
    build: Callable[[NamespaceBuilder], None]
    module: str
    line: int


def framework_namespace(
    name: str, *, package: str
) -> Callable[[Callable[[NamespaceBuilder], None]], FrameworkNamespace]:
    """Declare a namespace: ``@framework_namespace("SameDiffModels", package="samediff")``."""

    def decorate(function: Callable[[NamespaceBuilder], None]) -> FrameworkNamespace:
        return FrameworkNamespace(
            name=name,
            package=package,
            build=function,
            module=getattr(function, "__module__", "") or "",
            line=function.__code__.co_firstlineno,
        )

    return decorate
