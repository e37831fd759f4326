"""Open the fsspec filesystem behind an object-store URL (``s3://``, ``gs://``, ``az://``, ...).

Shared by ``omnihub mirror`` (writing a mirror) and the download path (reading one), so the
"which package implements this protocol" table lives once. fsspec and its implementations are
optional: a missing one is a one-line :class:`~omnihub.errors.ConfigurationError` naming the
package to install. Credentials are never passed here: each implementation reads its own
usual chain (for s3fs, botocore's: ``AWS_*`` variables, profiles, instance roles;
``AWS_ENDPOINT_URL_S3`` for MinIO/Ceph/moto).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from omnihub.errors import ConfigurationError
from omnihub.urls import redact_url

__all__ = ["PACKAGES", "filesystem", "package_for", "plain_url"]

#: fsspec protocol -> the package that implements it (for the "install X" message).
PACKAGES = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
    "adl": "adlfs",
    "hf": "huggingface_hub",
    "sftp": "paramiko",
    "ssh": "paramiko",
}


def package_for(scheme: str) -> str:
    """The package implementing ``scheme``, or a description when the table does not know it."""
    return PACKAGES.get(scheme.lower(), f"the fsspec implementation of {scheme}://")


def plain_url(url: str) -> str:
    """``url`` with its path percent-decoded: model URLs encode each segment, object keys are
    the plain names (``s3://b/zoo/my%20model.bin`` is the key ``zoo/my model.bin``)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{unquote(parts.path)}"


def filesystem(url: str, what: str) -> tuple[Any, str]:
    """``(fs, path)`` for an fsspec ``url`` (its path taken as is; see :func:`plain_url`).

    ``what`` starts the error message (``"mirror"``, a model's label). Raises
    :class:`ConfigurationError` when fsspec or the protocol's implementation is missing, or
    the protocol is unknown.
    """
    scheme = url.partition("://")[0].lower()
    shown = redact_url(url)
    try:
        import fsspec.core
    except ImportError:
        raise ConfigurationError(
            f"{what} {shown}: needs fsspec for {scheme}://; pip install 'omnihub[mirror]' "
            f"(or 'omnihub[s3]' for s3fs)"
        ) from None
    package = package_for(scheme)
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError:
        raise ConfigurationError(
            f"{what} {shown}: needs {package} for {scheme}://; pip install {package}"
        ) from None
    except ValueError as exc:  # an unknown protocol
        raise ConfigurationError(f"{what} {shown}: {exc}") from None
    return fs, str(path)
