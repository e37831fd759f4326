"""The typed error hierarchy of omnihub.

Every error says which model, URL and path it concerns and what was expected versus found,
so that a one-line CLI message is enough to act on. All derive from :class:`OmnihubError`.
"""

from __future__ import annotations

__all__ = [
    "CacheDirectoryError",
    "ConfigurationError",
    "DownloadError",
    "IntegrityError",
    "LoadError",
    "ModelNotFoundError",
    "OfflineError",
    "OmnihubError",
    "WriteError",
]


class OmnihubError(Exception):
    """Base class of every error omnihub raises on purpose."""


class ConfigurationError(OmnihubError, ValueError):
    """A setting (argument, environment variable, spec field) has an invalid value."""


class ModelNotFoundError(OmnihubError, LookupError):
    """No repository has the model, or no catalogue entry matches the request."""


class DownloadError(OmnihubError, OSError):
    """A transfer failed after the retries it was allowed (network, HTTP status, disk)."""


class IntegrityError(OmnihubError):
    """A file's size or sha256 differs from what the catalogue or the cache record says."""


class OfflineError(OmnihubError):
    """Offline mode is on and the model is not in the cache."""


class LoadError(OmnihubError):
    """A model file could not be parsed by its loader (truncated, corrupt, wrong format)."""


class WriteError(DownloadError):
    """The local disk refused a download (full, read-only, quota): no mirror can help."""


class CacheDirectoryError(ConfigurationError, OSError):
    """``OMNIHUB_HOME`` (or a directory inside it) is a file, a dangling symlink or a loop.

    Also an :class:`OSError`, so code that handles a filesystem failure still handles it.
    """
