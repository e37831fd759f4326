"""The public, versioned contract between omnihub-compile's output and the runtime.

Generated packages -- this repository's ``generated/`` and any zoo someone else compiles
and publishes -- import only this module from omnihub. A namespace package starts with::

    from omnihub.generated_api import load_model as _load, require_api as _require_api

    _require_api(1, __name__)

and each model function is ``return _load("<package>", "<python_name>",
force_download=force_download)``; a large namespace also uses :class:`ShardedNamespace`
and its shards :func:`shard_module_name`. The number passed to :func:`require_api` is the
version of this contract the compiler emitted (``omnihub_compiler.emit.GENERATED_API``); the
compiler refuses to emit a version the installed runtime does not list in
:data:`SUPPORTED_API_VERSIONS`, and a package compiled for a version this runtime lacks fails
at import with a message saying what to install, instead of an ``AttributeError`` deep in a
private module.

Changing a signature here means a new API version: keep the old one in
:data:`SUPPORTED_API_VERSIONS` for as long as published zoos use it.

Only ``sys`` is imported (through ``_entry``/``_shards``): this runs inside every
``import omnihub_generated.<package>``.
"""

from __future__ import annotations

from omnihub._entry import load_model
from omnihub._shards import ShardedNamespace, shard_module_name

__all__ = [
    "API_VERSION",
    "SUPPORTED_API_VERSIONS",
    "ShardedNamespace",
    "load_model",
    "require_api",
    "shard_module_name",
]

#: The newest version of the generated-code contract this runtime provides.
API_VERSION = 1
#: Every version this runtime still serves (generated code of any of them imports).
SUPPORTED_API_VERSIONS = frozenset({1})


def require_api(version: int, module: str) -> None:
    """Raise ``ImportError`` unless generated-code API ``version`` is supported.

    Called once at the top of every generated namespace package (``module`` is its
    ``__name__``).
    """
    if version not in SUPPORTED_API_VERSIONS:
        from omnihub import __version__

        supported = ", ".join(str(v) for v in sorted(SUPPORTED_API_VERSIONS))
        raise ImportError(
            f"{module} was compiled by omnihub-compile for generated-code API {version}, but"
            f" the installed omnihub {__version__} provides API {supported}; install an"
            " omnihub that supports it (or recompile the zoo with a matching omnihub-compile)"
        )
