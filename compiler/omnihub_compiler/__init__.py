"""omnihub-compile: compiles the spec/ DSL into typed ``omnihub_generated.<package>`` modules.

The pipeline is ``loader`` (import spec/*.py, run each ``@framework_namespace``) ->
``validate`` (every rule, all errors together) -> ``lock`` (fill sha256/size gaps from
spec/omnihub.lock) -> ``emit`` (``ast`` nodes) -> ``printer`` (black-identical text without
running black) -> ``writer`` (all-or-nothing tree swap), plus ``distribution``
(generated/pyproject.toml) and ``docs`` (the ``--docs`` catalogue page). ``pin`` measures
the models the spec leaves unpinned and writes the lock file.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
