"""Object stores as download sources, through fsspec: ``s3://``, ``gs://``, ``az://``, ...

:func:`open_object` opens a mirror's object and says its size and validators (ETag,
modification time, as the resume record keeps them for HTTP), from the details the open
file reads with. Reads go through the implementation's buffered file (:data:`BLOCK_SIZE` per
ranged GET, the next block fetched in the background), so memory stays bounded. An object
replaced while it is read raises :class:`Expired` (s3fs's If-Match 412) or shows in
:func:`changed`; the caller then starts over. Errors name the redacted URL; credentials come
from the implementation's own chain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from omnihub.errors import DownloadError, ModelNotFoundError
from omnihub.object_store import filesystem, package_for, plain_url
from omnihub.urls import redact_url

__all__ = ["BLOCK_SIZE", "Expired", "Opened", "changed", "open_object"]

#: Bytes fetched per ranged read of the object (one GET on S3).
BLOCK_SIZE = 32 << 20
#: fsspec's cache fetching the next block on a worker thread (at most three in memory).
CACHE = "background"


class Expired(Exception):
    """The object changed while it was being read (s3fs ``FileExpired``, a 412 on If-Match)."""


def _expired(exc: BaseException) -> bool:
    # s3fs.utils.FileExpired; matched by name so no implementation has to be imported.
    return any(cls.__name__ == "FileExpired" for cls in type(exc).__mro__)


def _validators(details: Mapping[str, Any]) -> dict[str, str]:
    """ETag and modification time from an fsspec ``info()`` (names differ by implementation)."""
    found: dict[str, str] = {}
    etag = details.get("ETag") or details.get("etag") or details.get("generation")
    if etag:
        found["ETag"] = str(etag)
    for key in ("LastModified", "last_modified", "updated", "mtime", "created"):
        if details.get(key):
            found["Last-Modified"] = str(details[key])
            break
    return found


class Opened:
    """An object open for reading: ``size``, ``validators``, ``stream``, ``read``."""

    def __init__(self, url: str, fs: Any, path: str, stream: Any, details: Mapping[str, Any]):
        self.url, self.fs, self.path, self.stream = url, fs, path, stream
        self.size = int(details["size"])
        self.validators = _validators(details)

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; :class:`Expired` when the object changed since it was opened."""
        try:
            data: bytes = self.stream.read(size)
        except Exception as exc:
            if _expired(exc):
                raise Expired(f"{redact_url(self.url)} changed while it was read") from None
            raise
        return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.close()


def _refused(url: str, label: str, exc: BaseException) -> DownloadError:
    scheme = url.partition("://")[0].lower()
    return DownloadError(
        f"{label}: {redact_url(url)} refused access ({type(exc).__name__}: {exc}); "
        f"{package_for(scheme)} reads credentials from its usual chain "
        "(for s3: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance roles)"
    )


def open_object(url: str, label: str) -> Opened:
    """Open the object at ``url``: ModelNotFoundError when there is none, DownloadError when
    access is refused or the store unreachable, ConfigurationError without the package."""
    fs, path = filesystem(plain_url(url), label)
    shown = redact_url(url)
    try:
        with contextlib.suppress(Exception):
            fs.invalidate_cache(path)  # a listing cached earlier must not stand for the object
        stream = fs.open(
            path, "rb", block_size=BLOCK_SIZE, cache_type=CACHE, cache_options={"maxblocks": 2}
        )
    except FileNotFoundError:
        raise ModelNotFoundError(f"{label}: {shown} does not exist (not found)") from None
    except PermissionError as exc:
        raise _refused(url, label, exc) from None
    except IsADirectoryError:
        raise ModelNotFoundError(f"{label}: {shown} is a directory, not a model file") from None
    except Exception as exc:  # botocore, aiohttp, google-auth... each has its own types
        raise DownloadError(f"{label}: cannot read {shown}: {type(exc).__name__}: {exc}") from None
    details = getattr(stream, "details", None)
    try:
        if not isinstance(details, Mapping) or "size" not in details:
            details = fs.info(path)
        return Opened(url, fs, path, stream, details)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            stream.close()
        if isinstance(exc, FileNotFoundError):
            raise ModelNotFoundError(f"{label}: {shown} does not exist (not found)") from None
        if isinstance(exc, (KeyError, TypeError, ValueError)):
            raise DownloadError(f"{label}: {shown}: the store reported no size") from None
        raise


def changed(opened: Opened) -> bool:
    """Whether the object now differs (size or validators) from when it was opened."""
    try:
        opened.fs.invalidate_cache(opened.path)
        now = opened.fs.info(opened.path)
    except FileNotFoundError:
        return True
    except Exception:
        return False  # cannot tell: the sha256 still guards the result
    if int(now.get("size", -1)) != opened.size:
        return True
    current = _validators(now)
    return any(current.get(name) not in (None, value) for name, value in opened.validators.items())
