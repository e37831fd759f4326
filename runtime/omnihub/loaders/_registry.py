"""The loader registry: which loader turns which catalogue entry into which typed object.

A loader is chosen, in order, by

1. ``entry.factory`` -- a ``"module:callable"`` named by the spec (DJL's ``BlockFactory`` idea):
   code that rebuilds the model from the downloaded file, called as ``factory(path, entry)``;
2. the most specific registered :class:`LoaderSpec` matching ``(format, framework, model_type)``
   (more constrained keys win; on a tie :func:`register` beats entry points, which beat the
   built-ins, and the latest API registration wins among its peers);
3. otherwise the raw :class:`~omnihub.model_file.ModelFile`.

Loaders come from three places: the built-in table below, the ``omnihub.loaders`` entry point
group (read once, lazily), and :func:`register`. Loader targets may be given as
``"module:callable"`` strings so that choosing a loader -- and :func:`result_type`, which the
compiler calls -- imports nothing heavy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs

from omnihub._enums import Format, Framework, ModelType
from omnihub.catalog import ModelEntry
from omnihub.errors import ConfigurationError

__all__ = [
    "ENTRY_POINT_GROUP",
    "LoaderFunction",
    "LoaderSpec",
    "find_loader",
    "register",
    "registered_loaders",
    "resolve_callable",
    "result_type",
]

#: The importlib.metadata entry point group third-party loaders are published under.
ENTRY_POINT_GROUP = "omnihub.loaders"

#: A loader: ``(entry, path) -> typed object``.
LoaderFunction = Callable[["ModelEntry", Path], object]

_RAW = ("omnihub.model_file", "ModelFile")


def _freeze_keys(value: str | Iterable[str] | None) -> frozenset[str] | None:
    """Normalise a key constraint: None (any), one enum/str, or an iterable of them."""
    if value is None:
        return None
    if isinstance(value, str):  # str enums included
        return frozenset({str(value)})
    try:
        items = iter(value)
    except TypeError:
        raise TypeError(
            f"expected a string, an enum or an iterable of them, not {value!r}"
        ) from None
    return frozenset(str(v) for v in items)


@attrs.frozen(kw_only=True)
class LoaderSpec:
    """One registered loader and the entries it applies to.

    ``loader`` is a callable ``(entry, path) -> object`` or a ``"module:callable"`` string
    imported only when the loader runs. ``formats``/``frameworks``/``model_types`` restrict
    the entries it matches (None: any). ``result_type`` is the ``(module, qualname)`` of the
    object it returns, used to annotate generated functions; ``result_types`` may refine it
    per model type (e.g. DL4J: ``COMP_GRAPH`` -> ``ComputationGraph``).
    """

    name: str
    loader: LoaderFunction | str
    result_type: tuple[str, str] = ("builtins", "object")
    formats: frozenset[str] | None = attrs.field(default=None, converter=_freeze_keys)
    frameworks: frozenset[str] | None = attrs.field(default=None, converter=_freeze_keys)
    model_types: frozenset[str] | None = attrs.field(default=None, converter=_freeze_keys)
    result_types: tuple[tuple[str, tuple[str, str]], ...] = ()

    def matches(self, entry: ModelEntry) -> bool:
        """Whether this loader applies to ``entry``."""
        return (
            (self.formats is None or str(entry.format) in self.formats)
            and (self.frameworks is None or str(entry.framework) in self.frameworks)
            and (self.model_types is None or str(entry.model_type) in self.model_types)
        )

    @property
    def specificity(self) -> int:
        """How many of the three keys this loader constrains (more wins)."""
        return sum(k is not None for k in (self.formats, self.frameworks, self.model_types))

    def type_for(self, entry: ModelEntry) -> tuple[str, str]:
        """The ``(module, qualname)`` this loader returns for ``entry``."""
        for model_type, type_ in self.result_types:
            if model_type == str(entry.model_type):
                return type_
        return self.result_type

    def resolve(self) -> LoaderFunction:
        """Return the loader callable, importing it (once) if it was given as a string."""
        if isinstance(self.loader, str):
            target = _resolved.get(self.loader)
            if target is None:
                target = resolve_callable(self.loader, what=f"loader {self.name!r}")
                _resolved[self.loader] = target
            return target
        return self.loader


#: ``"module:callable"`` -> the callable, once imported (a failed import is not kept).
_resolved: dict[str, LoaderFunction] = {}


def resolve_callable(reference: str, *, what: str) -> Callable[..., object]:
    """Import ``"package.module:attr.path"`` and return the callable it names."""
    import importlib

    module_name, sep, qualname = reference.partition(":")
    if not sep or not module_name or not qualname:
        raise ConfigurationError(f"{what}: {reference!r} is not of the form 'module:callable'")
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"{what}: cannot import {module_name!r}: {exc}") from exc
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ConfigurationError(f"{what}: {module_name!r} has no {qualname!r}") from exc
    if not callable(target):
        raise ConfigurationError(f"{what}: {reference!r} is not callable")
    return target


def _builtin_specs() -> list[LoaderSpec]:
    return [
        LoaderSpec(
            name="raw",
            loader="omnihub.loaders:load_raw",
            result_type=_RAW,
            formats=Format.RAW,
        ),
        LoaderSpec(
            name="samediff",
            loader="omnihub.loaders.samediff:load_samediff",
            result_type=("omnihub.loaders.samediff", "SameDiffGraph"),
            formats=Format.SAMEDIFF,
        ),
        LoaderSpec(
            name="dl4j",
            loader="omnihub.loaders.dl4j:load_dl4j",
            result_type=("omnihub.loaders.dl4j", "Dl4jNetwork"),
            formats=Format.DL4J,
            result_types=(
                (ModelType.COMP_GRAPH.value, ("omnihub.loaders.dl4j", "ComputationGraph")),
                (ModelType.SEQUENTIAL.value, ("omnihub.loaders.dl4j", "MultiLayerNetwork")),
            ),
        ),
        LoaderSpec(
            name="onnx",
            loader="omnihub.loaders.onnx_model:load_onnx",
            result_type=("onnx", "ModelProto"),
            formats=Format.ONNX,
        ),
        LoaderSpec(
            name="safetensors",
            loader="omnihub.loaders.safetensors_model:load_safetensors",
            result_type=("omnihub.loaders.safetensors_model", "SafeTensorsWeights"),
            formats=Format.SAFETENSORS,
        ),
        LoaderSpec(
            name="gguf",
            loader="omnihub.loaders.gguf_model:load_gguf",
            result_type=("omnihub.loaders.gguf_model", "GGUFModel"),
            formats=Format.GGUF,
        ),
    ]


class _Registry:
    """Built-in, entry-point and API-registered loaders, in registration order, and which
    of them each (format, framework, model type) gets: found once, forgotten on a change
    (a cached model's call must not scan every loader again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._builtin: tuple[LoaderSpec, ...] = tuple(_builtin_specs())
        self._plugins: tuple[LoaderSpec, ...] | None = None  # read on first use
        self._api: list[LoaderSpec] = []
        self._chosen: dict[tuple[str, str, str], LoaderSpec | None] = {}

    def add(self, spec: LoaderSpec) -> None:
        with self._lock:
            self._api.append(spec)
            self._chosen = {}

    def all(self) -> tuple[LoaderSpec, ...]:
        """Built-ins, then entry points, then API registrations: later wins ties."""
        if self._plugins is None:
            plugins = tuple(_entry_point_specs())
            with self._lock:
                if self._plugins is None:
                    self._plugins = plugins
        with self._lock:
            return (*self._builtin, *(self._plugins or ()), *self._api)

    def find(self, entry: ModelEntry) -> LoaderSpec | None:
        """The most specific loader matching ``entry`` (the latest among equals)."""
        key = (str(entry.format), str(entry.framework), str(entry.model_type))
        chosen = self._chosen  # replaced, never changed in place, on a registration
        if key in chosen:
            return chosen[key]
        best: LoaderSpec | None = None
        for spec in self.all():
            if spec.matches(entry) and (best is None or spec.specificity >= best.specificity):
                best = spec
        with self._lock:
            if chosen is self._chosen:  # no registration meanwhile
                self._chosen = {**chosen, key: best}
        return best

    def reset(self) -> None:
        """Forget API registrations and re-read entry points on next use (for tests)."""
        with self._lock:
            self._plugins = None
            self._api = []
            self._chosen = {}


def _entry_point_specs() -> list[LoaderSpec]:
    """Read the ``omnihub.loaders`` entry points: each names a LoaderSpec or a list of them.

    A broken plugin is reported with a warning and skipped, so one bad distribution cannot
    stop every other model from loading.
    """
    from importlib.metadata import entry_points

    found: list[LoaderSpec] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            value = ep.load()
            if callable(value) and not isinstance(value, LoaderSpec):
                value = value()
            specs = [value] if isinstance(value, LoaderSpec) else list(value)
            if not all(isinstance(s, LoaderSpec) for s in specs):
                raise TypeError("expected a LoaderSpec or an iterable of LoaderSpec")
        except Exception as exc:  # a plugin may fail in any way; report it, keep going
            import warnings

            warnings.warn(
                f"omnihub: ignoring loader entry point {ep.name!r} ({ep.value}): {exc}",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        found.extend(specs)
    return found


_registry = _Registry()


def register(
    loader: LoaderFunction | str,
    *,
    name: str | None = None,
    format: Format | str | Iterable[Format | str] | None = None,
    framework: Framework | str | Iterable[Framework | str] | None = None,
    model_type: ModelType | str | Iterable[ModelType | str] | None = None,
    result_type: tuple[str, str] = ("builtins", "object"),
) -> LoaderSpec:
    """Register ``loader`` for the entries matching the given keys; return its spec.

    A later registration wins over an earlier one of the same specificity, so this also
    overrides a built-in loader.
    """
    if name is None:
        name = loader if isinstance(loader, str) else getattr(loader, "__qualname__", "loader")
    spec = LoaderSpec(
        name=name,
        loader=loader,
        result_type=result_type,
        formats=format,
        frameworks=framework,
        model_types=model_type,
    )
    _registry.add(spec)
    return spec


def registered_loaders() -> tuple[LoaderSpec, ...]:
    """Every known loader (built-in first, then entry points, then API registrations)."""
    return _registry.all()


def find_loader(entry: ModelEntry) -> LoaderSpec | None:
    """The loader for ``entry`` (ignoring ``entry.factory``), or None for the raw file."""
    return _registry.find(entry)


def _factory_result_type(entry: ModelEntry) -> tuple[str, str]:
    declared = entry.metadata.get("result_type")
    if isinstance(declared, str):
        module, sep, qualname = declared.partition(":")
        if sep and module and qualname:
            return (module, qualname)
        raise ConfigurationError(
            f"{entry.source or entry.name}: metadata result_type {declared!r} is not "
            "'module:qualname'"
        )
    return ("builtins", "object")


def result_type(entry: ModelEntry) -> tuple[str, str]:
    """``(module, qualname)`` of what loading ``entry`` returns; imports nothing heavy."""
    if entry.factory:
        return _factory_result_type(entry)
    spec = find_loader(entry)
    return _RAW if spec is None else spec.type_for(entry)


def load(entry: ModelEntry, path: Path) -> object:
    """Load ``path`` with the loader chosen for ``entry`` (factory, registry, raw file)."""
    path = Path(path)
    if entry.factory:
        factory = resolve_callable(entry.factory, what=f"model {entry.name!r} factory")
        return factory(path, entry)
    spec = find_loader(entry)
    if spec is None:
        from omnihub.model_file import ModelFile

        return ModelFile(path, entry)
    return spec.resolve()(entry, path)
