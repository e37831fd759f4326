"""Lazy attribute access for large generated namespaces (PEP 562 module ``__getattr__``).

omnihub-compile splits a namespace with more models than its shard size into shard modules
``<package>/_models_000.py``, ``_models_001.py``, ... holding consecutive runs of the sorted
model functions (each with its docstring and one ``_load(...)`` call, as usual). The
package's ``__init__.py`` then holds only ``__all__``, ``_SHARDS`` (the first model name of
each shard, sorted) and::

    _namespace = _Sharded(globals(), __all__, _SHARDS, "BigModels")
    __getattr__ = _namespace.attribute
    __dir__ = _namespace.names

so importing it compiles (or unmarshals) a list of names instead of thousands of functions.
The first access to a model imports its shard -- shard ``k`` of ``n`` is the submodule
``_models_`` + ``k`` zero-padded to ``max(3, len(str(n - 1)))`` digits -- and caches every
function of that shard in the package's globals, so later accesses are plain dict lookups
and ``from omnihub_generated.big import f``, ``m.f``, ``help(m.f)``, ``dir(m)`` and
``from m import *`` behave as for an unsharded package (the functions report the package as
their ``__module__``). The namespace class (``Pretrained.<package>()``) is built on first
access: every model is a static method whose function is fetched from its shard on first use.

Only ``sys`` is imported here: this runs inside ``import omnihub_generated.<package>``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = ["SHARD_PREFIX", "ShardedNamespace", "shard_module_name"]

#: Shard submodules are named ``<SHARD_PREFIX><index>``.
SHARD_PREFIX = "_models_"


def shard_module_name(index: int, count: int) -> str:
    """The submodule name of shard ``index`` of ``count`` (``_models_007``)."""
    width = max(3, len(str(count - 1)))
    return f"{SHARD_PREFIX}{index:0{width}d}"


def _unloaded() -> None:
    """Placeholder wrapped by a lazy static method until its function is imported."""


class _LazyStaticMethod(staticmethod):  # type: ignore[type-arg]
    """A static method whose function lives in a shard not imported yet.

    Still a ``staticmethod`` (``inspect.getattr_static`` and stubtest see one); the first
    ``__get__`` imports the shard and replaces itself in the class with the real one.
    """

    def __init__(self, namespace: ShardedNamespace, name: str) -> None:
        super().__init__(_unloaded)
        self._omnihub_namespace = namespace
        self._omnihub_name = name

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        function = self._omnihub_namespace.attribute(self._omnihub_name)
        if owner is not None:
            setattr(owner, self._omnihub_name, staticmethod(function))
        return function


class ShardedNamespace:
    """The lazy ``__getattr__``/``__dir__`` of one sharded generated package."""

    def __init__(
        self,
        module_globals: dict[str, Any],
        names: Sequence[str],
        shards: Sequence[str],
        class_name: str,
    ) -> None:
        self._globals = module_globals
        self._module: str = module_globals["__name__"]
        self._names = names
        self._starts = list(shards)
        self._class_name = class_name
        self._members: frozenset[str] | None = None

    def _error(self, name: str) -> AttributeError:
        return AttributeError(f"module {self._module!r} has no attribute {name!r}")

    def attribute(self, name: str) -> Any:
        """Module ``__getattr__``: a model function (importing its shard) or the class."""
        if self._members is None:
            self._members = frozenset(self._names)
        if name not in self._members:
            raise self._error(name)
        if name == self._class_name:
            return self._globals.setdefault(name, self._build_class())
        from bisect import bisect_right

        index = bisect_right(self._starts, name) - 1
        if index < 0:
            raise self._error(name)
        shard = f"{self._module}.{shard_module_name(index, len(self._starts))}"
        __import__(shard)
        module = sys.modules[shard]
        for function_name in module.__all__:
            function = getattr(module, function_name)
            function.__module__ = self._module
            self._globals.setdefault(function_name, function)
        try:
            return self._globals[name]
        except KeyError:
            raise self._error(name) from None

    def names(self) -> list[str]:
        """Module ``__dir__``: what is loaded already plus every model and the class."""
        return sorted({*self._globals, *self._names})

    def _build_class(self) -> type:
        package = self._module.rpartition(".")[2]
        body: dict[str, Any] = {
            "__module__": self._module,
            "__qualname__": self._class_name,
            "__doc__": (
                f"The ``{self._class_name}`` namespace: every model as a static method.\n\n"
                f"``Pretrained.{package}()`` returns an instance, as in DL4J's generated Java."
            ),
        }
        for name in self._names:
            if name != self._class_name:
                body[name] = _LazyStaticMethod(self, name)
        return type(self._class_name, (), body)
