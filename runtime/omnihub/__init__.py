"""omnihub: typed, verified, resumable model downloads and loaders for the omnihub zoo.

The public names are imported lazily (PEP 562) so that ``import omnihub`` -- done by every
generated package -- costs next to nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: keeps ``import omnihub`` from importing typing

__version__ = "0.1.0"

# name -> module that defines it
_LAZY: dict[str, str] = {
    "DEFAULT_OMNIHUB_URL": "omnihub._enums",
    "Format": "omnihub._enums",
    "Framework": "omnihub._enums",
    "ModelType": "omnihub._enums",
    "Catalog": "omnihub.catalog",
    "ModelEntry": "omnihub.catalog",
    "ModelFile": "omnihub.model_file",
    "ConfigurationError": "omnihub.errors",
    "DownloadError": "omnihub.errors",
    "IntegrityError": "omnihub.errors",
    "LoadError": "omnihub.errors",
    "ModelNotFoundError": "omnihub.errors",
    "OfflineError": "omnihub.errors",
    "OmnihubError": "omnihub.errors",
    "fetch": "omnihub.hub",
    # the runtime core (issue 3): submodules with their own public API, and repositories
    "cache": "omnihub.cache",
    "cache_admin": "omnihub.cache_admin",
    "config": "omnihub.config",
    "HuggingFaceRepository": "omnihub.repositories",
    "Repository": "omnihub.repositories",
    "Source": "omnihub.repositories",
    "UrlRepository": "omnihub.repositories",
    "ZooRepository": "omnihub.repositories",
    "register_repository": "omnihub.repositories",
    "registered_repositories": "omnihub.repositories",
    "unregister_repository": "omnihub.repositories",
    "AmbiguousModelError": "omnihub.search",
    "Criteria": "omnihub.search",
    "list_models": "omnihub.search",
    "load": "omnihub.search",
}

# Static, so that linters and type checkers see it; tests check it equals _LAZY's keys.
__all__ = [
    "DEFAULT_OMNIHUB_URL",
    "AmbiguousModelError",
    "Catalog",
    "ConfigurationError",
    "Criteria",
    "DownloadError",
    "Format",
    "Framework",
    "HuggingFaceRepository",
    "IntegrityError",
    "LoadError",
    "ModelEntry",
    "ModelFile",
    "ModelNotFoundError",
    "ModelType",
    "OfflineError",
    "OmnihubError",
    "Repository",
    "Source",
    "UrlRepository",
    "ZooRepository",
    "__version__",
    "cache",
    "cache_admin",
    "config",
    "fetch",
    "list_models",
    "load",
    "register_repository",
    "registered_repositories",
    "unregister_repository",
]

if TYPE_CHECKING:
    from typing import Any

    from omnihub import cache as cache
    from omnihub import cache_admin as cache_admin
    from omnihub import config as config
    from omnihub._enums import DEFAULT_OMNIHUB_URL as DEFAULT_OMNIHUB_URL
    from omnihub._enums import Format as Format
    from omnihub._enums import Framework as Framework
    from omnihub._enums import ModelType as ModelType
    from omnihub.catalog import Catalog as Catalog
    from omnihub.catalog import ModelEntry as ModelEntry
    from omnihub.errors import ConfigurationError as ConfigurationError
    from omnihub.errors import DownloadError as DownloadError
    from omnihub.errors import IntegrityError as IntegrityError
    from omnihub.errors import LoadError as LoadError
    from omnihub.errors import ModelNotFoundError as ModelNotFoundError
    from omnihub.errors import OfflineError as OfflineError
    from omnihub.errors import OmnihubError as OmnihubError
    from omnihub.hub import fetch as fetch
    from omnihub.model_file import ModelFile as ModelFile
    from omnihub.repositories import HuggingFaceRepository as HuggingFaceRepository
    from omnihub.repositories import Repository as Repository
    from omnihub.repositories import Source as Source
    from omnihub.repositories import UrlRepository as UrlRepository
    from omnihub.repositories import ZooRepository as ZooRepository
    from omnihub.repositories import register_repository as register_repository
    from omnihub.repositories import registered_repositories as registered_repositories
    from omnihub.repositories import unregister_repository as unregister_repository
    from omnihub.search import AmbiguousModelError as AmbiguousModelError
    from omnihub.search import Criteria as Criteria
    from omnihub.search import list_models as list_models
    from omnihub.search import load as load


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'omnihub' has no attribute {name!r}")
    import importlib

    imported = importlib.import_module(module)
    # a submodule listed under its own name (omnihub.cache, omnihub.config) is the value itself
    value = imported if module == f"{__name__}.{name}" else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
