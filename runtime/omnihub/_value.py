"""Immutable value classes for the types every model call creates, without importing a library.

Why not attrs here: a generated function's first call creates a catalogue entry, a config, a
cache record and (for raw models) a :class:`~omnihub.model_file.ModelFile`. Importing attrs
costs ~20 ms of CPU (it pulls in ``inspect``, ``platform``, ``threading``...), dataclasses
~12 ms, msgspec ~16 ms; when 16 training workers ask for one model at once on a 2-core
machine, 15 of them wait for the one that downloads, and each waiter's imports come straight
out of that download (issue 5, target 6: ``docs/benchmarks.md``). So these few classes derive
from :class:`Value`, which costs nothing to import; attrs remains the tool for every other
class (loader results, repositories, search criteria, the CLI, the compiler's DSL).

A value class lists its fields in ``__slots__`` (declaration order), annotates them for type
checkers and writes an explicit, fully typed ``__init__`` whose parameters are exactly the
fields, ending with ``store(self, locals())``::

    class Point(Value):
        __slots__ = ("x", "y")
        x: int
        y: int

        def __init__(self, x: int, y: int = 0) -> None:
            store(self, locals())

:class:`Value` then supplies equality (same class, same fields), hashing, a repr, immutability
and pickling; type checkers reject assignments to fields too (``dataclass_transform`` with
``frozen_default``, seen by type checkers only). :func:`fields`, :func:`defaults`,
:func:`as_dict` and :func:`evolve` are the counterparts of ``attrs.fields``/``asdict``/
``evolve``. Class options: ``_repr_hidden``
(fields left out of the repr: secrets, bulky data; ``_repr_field`` may redact one instead),
``_uncompared`` (fields ignored by ``==`` and ``hash``), ``_unhashed`` (mutable mappings:
compared, but not hashed).
"""

from __future__ import annotations

# Not ``from typing import TYPE_CHECKING``: importing typing costs several ms per process.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from typing_extensions import dataclass_transform

    _V = TypeVar("_V", bound="Value")
else:

    def dataclass_transform(**_options: object) -> object:
        return lambda cls: cls


__all__ = ["FrozenInstanceError", "Value", "as_dict", "defaults", "evolve", "fields", "store"]


class FrozenInstanceError(AttributeError):
    """Raised on an attempt to set or delete a field of a value (they are immutable)."""


def store(obj: Value, values: dict[str, Any]) -> None:
    """Set every field of ``obj`` from ``values`` (an ``__init__``'s ``locals()``)."""
    setter = object.__setattr__
    for name in type(obj).__slots__:
        setter(obj, name, values[name])


def _rebuild(cls: type[_V], values: dict[str, Any]) -> _V:
    """Unpickle: call the constructor again with the stored fields."""
    return cls(**values)


@dataclass_transform(frozen_default=True)
class Value:
    """Base of omnihub's small immutable records (see the module docstring)."""

    __slots__: tuple[str, ...] = ()
    _repr_hidden: frozenset[str] = frozenset()
    _uncompared: frozenset[str] = frozenset()
    _unhashed: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def _compared(self) -> tuple[object, ...]:
        skip = self._uncompared
        return tuple(getattr(self, name) for name in self.__slots__ if name not in skip)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        skip = self._uncompared | self._unhashed
        return hash(
            (type(self).__qualname__, *(getattr(self, n) for n in self.__slots__ if n not in skip))
        )

    def __repr__(self) -> str:
        hidden = self._repr_hidden
        shown = ", ".join(
            f"{name}={self._repr_field(name)}" for name in self.__slots__ if name not in hidden
        )
        return f"{type(self).__name__}({shown})"

    def _repr_field(self, name: str) -> str:
        """How the repr shows field ``name`` (override to redact or abbreviate)."""
        return repr(getattr(self, name))

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), as_dict(self))


def fields(cls: type[Value]) -> tuple[str, ...]:
    """The field names of a value class, in declaration order."""
    return cls.__slots__


def defaults(cls: type[Value]) -> dict[str, Any]:
    """``field -> default`` for every field whose ``__init__`` parameter has a default."""
    init: Any = cls.__init__
    code = init.__code__
    positional = code.co_varnames[1 : code.co_argcount]  # without self
    result: dict[str, Any] = {}
    given = init.__defaults__ or ()
    if given:
        result.update(zip(positional[len(positional) - len(given) :], given, strict=False))
    result.update(init.__kwdefaults__ or {})
    return result


def as_dict(obj: Value) -> dict[str, Any]:
    """``field -> value`` of ``obj`` (shallow: nested values are not converted)."""
    return {name: getattr(obj, name) for name in obj.__slots__}


def evolve(obj: _V, **changes: Any) -> _V:
    """A copy of ``obj`` with ``changes`` applied, built by its constructor (so checked alike)."""
    return type(obj)(**{**as_dict(obj), **changes})
