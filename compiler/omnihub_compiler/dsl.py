"""The spec DSL: DL4J omnihub's Kotlin DSL, one construct for one, in typed Python.

Kotlin::

    FrameworkNamespace("SameDiffModels") {
        SameDiffModel("resnet18", "...", "${DEFAULT_OMNIHUB_URL}/samediff/resnet18.fb", true)
    }

Python (a spec file in spec/), line by line::

    from omnihub_compiler.dsl import DEFAULT_OMNIHUB_URL, NamespaceBuilder, framework_namespace

    @framework_namespace("SameDiffModels", package="samediff")
    def samediff(ns: NamespaceBuilder) -> None:
        ns.samediff_model("resnet18", "...", f"{DEFAULT_OMNIHUB_URL}/samediff/resnet18.fb", True)

The decorated function plays the Kotlin receiver lambda (``NamespaceModels.() -> Unit``):
its typed first parameter is the receiver, so mypy checks every call. Each builder method
takes the Kotlin constructor's parameters in the Kotlin order (positionally or by name) and
returns the recorded :class:`ModelDefinition`, which may still be changed (Kotlin's trailing
``block``: ``ns.samediff_model(...).tags = ("vision",)``). Enum arguments may be given as
strings in any case (``"comp_graph"``), as Kotlin's ``fromString`` accepts them. The
builders only *record* definitions with the ``spec/<file>.py:<line>`` they came from; the
compiler validates them all afterwards (:mod:`omnihub_compiler.validate`) and reports every
error. :meth:`NamespaceBuilder.manifest` and :meth:`NamespaceBuilder.at` read models from a
JSON file in spec/ with every error located at its manifest entry.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypedDict, overload

import attrs
from omnihub import DEFAULT_OMNIHUB_URL, Format, Framework, ModelType

from omnihub_compiler.naming import python_name as _python_name

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from omnihub_compiler.manifest import ManifestEntry

__all__ = [
    "DEFAULT_OMNIHUB_URL",
    "HUGGING_FACE",
    "REPOSITORY_BASE_URLS",
    "Extras",
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


class Extras(TypedDict, total=False):
    """The keyword-only extras beyond DL4J that every builder method accepts."""

    sha256: str | None
    size: int | None
    license: str | None
    tags: Iterable[str]
    python_name: str | None
    factory: str | None
    repository: str | None
    revision: str | None
    metadata: Mapping[str, MetadataValue] | None


@attrs.define(kw_only=True, eq=False)
class ModelDefinition:
    """One model as the spec declared it (unvalidated) and where it was declared.

    Mutable on purpose: the builders return it so that a spec can finish a definition
    afterwards, as a Kotlin ``block`` does. The compiler reads it after the namespace
    function returned. Types are what the DSL accepts; validation still checks every
    value, because a spec is not necessarily type-checked.
    """

    kind: str  # the DSL method: "samediff_model", "dl4j_model", "model", "gguf_model", ...
    name: str
    documentation: str
    framework: Framework | str
    model_type: ModelType | str
    format: Format | str | None
    url: str | None = None
    hugging_face_id: str | None = None
    file_pattern: str | None = None
    pretrained: bool = True
    repository: str | None = None
    revision: str | None = None
    sha256: str | None = None
    size: int | None = None
    license: str | None = None
    tags: Iterable[str] = ()
    python_name: str | None = None
    factory: str | None = None
    metadata: Mapping[str, MetadataValue] | None = None
    file: str  # "spec/<file>.py" as shown in messages and the catalogue
    line: int
    context: str = ""  # e.g. "entry 37 (model 'ResNet50', opset 7)" for a manifest entry

    @property
    def source(self) -> str:
        """``spec/<file>:<line>``, as the catalogue records it."""
        return f"{self.file}:{self.line}"

    @property
    def location(self) -> str:
        """Where errors are reported: :attr:`source`, plus the manifest entry if any."""
        return f"{self.source}: {self.context}" if self.context else self.source


def _caller_location(known_files: Mapping[str, str]) -> tuple[str, int, str]:
    """The innermost calling frame in a spec file: (display path, line, real path)."""
    first = sys._getframe(2)
    frame: FrameType | None = first
    while frame is not None:
        shown = known_files.get(frame.f_code.co_filename)
        if shown is not None:
            return shown, frame.f_lineno, frame.f_code.co_filename
        frame = frame.f_back
    return first.f_code.co_filename, first.f_lineno, first.f_code.co_filename


class NamespaceBuilder:
    """The receiver of a ``@framework_namespace`` function (Kotlin's ``NamespaceModels``).

    Each method mirrors one Kotlin model constructor, parameters in the Kotlin order, and
    returns the :class:`ModelDefinition` it recorded. The extras beyond DL4J
    (:class:`Extras`: ``sha256``, ``size``, ``license``, ``tags``, ``python_name``,
    ``factory``, ``repository``, ``revision``, ``metadata``) are keyword-only on every method.
    """

    def __init__(self, namespace: FrameworkNamespace, known_files: Mapping[str, str]) -> None:
        self.namespace = namespace
        self.models: list[ModelDefinition] = []
        self._known_files = known_files
        #: Set while a :meth:`manifest` entry is being turned into models.
        self._entry: ManifestEntry | None = None

    def _add(
        self,
        kind: str,
        *,
        name: str,
        documentation: str,
        framework: Framework | str,
        model_type: ModelType | str,
        format: Format | str | None,
        pretrained: bool,
        url: str | None = None,
        hugging_face_id: str | None = None,
        file_pattern: str | None = None,
        extras: Extras,
    ) -> ModelDefinition:
        """The one implementation behind every builder method."""
        unknown = set(extras) - set(Extras.__annotations__)
        if unknown:
            raise TypeError(f"{kind}() got unexpected keyword argument(s): {sorted(unknown)}")
        if self._entry is not None:
            file, line, context = self._entry.file, self._entry.line, self._entry.label
        else:
            file, line, _ = _caller_location(self._known_files)
            context = ""
        definition = ModelDefinition(
            kind=kind,
            name=name,
            documentation=documentation,
            framework=framework,
            model_type=model_type,
            format=format,
            url=url,
            hugging_face_id=hugging_face_id,
            file_pattern=file_pattern,
            pretrained=pretrained,
            file=file,
            line=line,
            context=context,
            **extras,
        )
        self.models.append(definition)
        return definition

    def samediff_model(
        self,
        name: str,
        documentation: str,
        url: str,
        pretrained: bool = True,
        **extras: Unpack[Extras],
    ) -> ModelDefinition:
        """Kotlin ``SameDiffModel(name, documentation, url, pretrained = true)``.

        A SameDiff graph: framework SAMEDIFF, model type COMP_GRAPH, format samediff.
        """
        return self._add(
            "samediff_model",
            name=name,
            documentation=documentation,
            url=url,
            pretrained=pretrained,
            framework=Framework.SAMEDIFF,
            model_type=ModelType.COMP_GRAPH,
            format=Format.SAMEDIFF,
            extras=extras,
        )

    @overload
    def dl4j_model(
        self,
        name: str,
        documentation: str,
        url: str,
        pretrained: bool,
        model_type: ModelType | str,
        **extras: Unpack[Extras],
    ) -> ModelDefinition: ...

    @overload
    def dl4j_model(
        self,
        name: str,
        documentation: str,
        url: str,
        pretrained: bool = True,
        *,
        model_type: ModelType | str,
        **extras: Unpack[Extras],
    ) -> ModelDefinition: ...

    def dl4j_model(
        self,
        name: str,
        documentation: str,
        url: str,
        pretrained: bool = True,
        model_type: ModelType | str | None = None,
        **extras: Unpack[Extras],
    ) -> ModelDefinition:
        """Kotlin ``DL4JModel(name, documentation, url, pretrained = true, modelType)``.

        A ModelSerializer zip; ``model_type`` (required) is COMP_GRAPH or SEQUENTIAL.
        """
        if model_type is None:
            raise TypeError("dl4j_model() missing required argument: 'model_type'")
        return self._add(
            "dl4j_model",
            name=name,
            documentation=documentation,
            url=url,
            pretrained=pretrained,
            framework=Framework.DL4J,
            model_type=model_type,
            format=Format.DL4J,
            extras=extras,
        )

    @overload
    def model(
        self,
        name: str,
        documentation: str,
        url: str,
        pretrained: bool,
        framework: Framework | str,
        model_type: ModelType | str = ModelType.COMP_GRAPH,
        *,
        format: Format | str | None = None,
        **extras: Unpack[Extras],
    ) -> ModelDefinition: ...

    @overload
    def model(
        self,
        name: str,
        documentation: str,
        url: str,
        pretrained: bool = True,
        *,
        framework: Framework | str,
        model_type: ModelType | str = ModelType.COMP_GRAPH,
        format: Format | str | None = None,
        **extras: Unpack[Extras],
    ) -> ModelDefinition: ...

    def model(  # noqa: PLR0917 -- Kotlin's Model() takes these six positionally
        self,
        name: str,
        documentation: str,
        url: str,
        pretrained: bool = True,
        framework: Framework | str | None = None,
        model_type: ModelType | str = ModelType.COMP_GRAPH,
        *,
        format: Format | str | None = None,
        **extras: Unpack[Extras],
    ) -> ModelDefinition:
        """Kotlin ``Model(name, documentation, url, pretrained = true, framework,
        modelType = COMP_GRAPH)``: any framework; ``format`` defaults to the framework's own."""
        if framework is None:
            raise TypeError("model() missing required argument: 'framework'")
        return self._add(
            "model",
            name=name,
            documentation=documentation,
            url=url,
            pretrained=pretrained,
            framework=framework,
            model_type=model_type,
            format=format,
            extras=extras,
        )

    def _hugging_face(
        self,
        kind: str,
        *,
        fmt: Format,
        name: str,
        documentation: str,
        hugging_face_id: str,
        file_pattern: str | None,
        pretrained: bool,
        extras: Extras,
    ) -> ModelDefinition:
        extras.setdefault("repository", HUGGING_FACE)
        return self._add(
            kind,
            name=name,
            documentation=documentation,
            hugging_face_id=hugging_face_id,
            file_pattern=file_pattern,
            pretrained=pretrained,
            framework=Framework.SAMEDIFF,
            model_type=ModelType.SAMEDIFF_PIPELINE,
            format=fmt,
            extras=extras,
        )

    def gguf_model(
        self,
        name: str,
        documentation: str,
        hugging_face_id: str,
        file_pattern: str | None = "*.gguf",
        pretrained: bool = True,
        **extras: Unpack[Extras],
    ) -> ModelDefinition:
        """Kotlin ``GGUFModel(name, documentation, huggingFaceId, filePattern = "*.gguf",
        pretrained = true)``: GGUF on the Hugging Face Hub (SAMEDIFF_PIPELINE).

        ``file_pattern`` is a file name (one file, loaded), or a glob (``*``, ``?``) or None
        (every file): then the model is every matching file of the repository, and the
        generated function returns an ``omnihub.hf_snapshot.Snapshot``.
        """
        return self._hugging_face(
            "gguf_model",
            fmt=Format.GGUF,
            name=name,
            documentation=documentation,
            hugging_face_id=hugging_face_id,
            file_pattern=file_pattern,
            pretrained=pretrained,
            extras=extras,
        )

    def safetensors_model(
        self,
        name: str,
        documentation: str,
        hugging_face_id: str,
        file_pattern: str | None = "*.safetensors",
        pretrained: bool = True,
        **extras: Unpack[Extras],
    ) -> ModelDefinition:
        """Kotlin ``SafeTensorsModel(name, documentation, huggingFaceId,
        filePattern = "*.safetensors", pretrained = true)``: SafeTensors weights on the Hub."""
        return self._hugging_face(
            "safetensors_model",
            fmt=Format.SAFETENSORS,
            name=name,
            documentation=documentation,
            hugging_face_id=hugging_face_id,
            file_pattern=file_pattern,
            pretrained=pretrained,
            extras=extras,
        )

    def manifest(self, path: str, *, label: Iterable[str] = ()) -> list[ManifestEntry]:
        """The entries of a JSON manifest in spec/ (a list of objects), each located.

        ``path`` is relative to the calling spec file and must stay inside its directory.
        ``label`` names the fields that identify an entry in messages, e.g.
        ``("model", "opset_version")`` gives ``spec/m.json:12: entry 3 (model 'AlexNet',
        opset_version 7): ...``. Reading a missing or mistyped field through the entry's
        accessors raises an error located there; declare each entry's models inside
        ``with ns.at(entry):`` so that validation errors are located there too.
        """
        from omnihub_compiler.manifest import read_manifest

        relative = Path(path)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"manifest path {path!r} must be relative, inside the spec directory")
        file, _, real = _caller_location(self._known_files)
        shown = f"{file.rsplit('/', 1)[0]}/{relative.as_posix()}" if "/" in file else path
        return read_manifest(Path(real).parent / relative, shown, tuple(label))

    @contextmanager
    def at(self, entry: ManifestEntry) -> Iterator[ManifestEntry]:
        """Locate the models declared inside the ``with`` block at manifest ``entry``."""
        previous, self._entry = self._entry, entry
        try:
            yield entry
        finally:
            self._entry = previous


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
    name: str, *, package: str | None = None
) -> Callable[[Callable[[NamespaceBuilder], None]], FrameworkNamespace]:
    """Declare a namespace: ``@framework_namespace("SameDiffModels", package="samediff")``.

    ``package`` defaults to the namespace name through the model naming rule
    (``SameDiffModels`` -> ``same_diff_models``).
    """

    def decorate(function: Callable[[NamespaceBuilder], None]) -> FrameworkNamespace:
        derived: Any = _python_name(name) if isinstance(name, str) else None
        return FrameworkNamespace(
            name=name,
            package=derived if package is None else package,
            build=function,
            module=getattr(function, "__module__", "") or "",
            line=function.__code__.co_firstlineno,
        )

    return decorate
