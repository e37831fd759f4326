"""Object stores as download sources, through fsspec: ``s3://``, ``gs://``, ``az://``, ...

:func:`open_object` opens the object of a configured mirror URL for reading and says what it
is: its size and its validators (ETag, last-modified time) in the form the resume record
keeps for HTTP (``{"ETag": ..., "Last-Modified": ...}``), taken from the details the open
file itself reads with, so a later range read and the record agree. The caller seeks to the
resume offset and copies with :meth:`Opened.readinto`. Reads go through the implementation's
buffered file (:data:`BLOCK_SIZE` bytes per ranged GET, the next block fetched in the
background), so memory stays bounded whatever the object's size.

An object replaced while it is read is reported as :class:`Expired`: s3fs sends ``If-Match``
with the ETag it opened and raises ``FileExpired`` on the 412; for other implementations
:func:`changed` compares the validators again after the copy. Either way the caller starts
over instead of publishing a mixture of two objects.

Errors name the (redacted) URL: a missing object is
:class:`~omnihub.errors.ModelNotFoundError` (so the next mirror is tried), refused
credentials or an unreachable store :class:`~omnihub.errors.DownloadError`, a missing
implementation :class:`~omnihub.errors.ConfigurationError` naming the package. Credentials
come from the implementation's own chain and never appear in a message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from omnihub.errors import DownloadError, ModelNotFoundError
from omnihub.object_store import filesystem, package_for, plain_url
from omnihub.urls import redact_url

__all__ = ["BLOCK_SIZE", "Expired", "Opened", "changed", "open_object"]

#: Bytes fetched per ranged read of the object (one GET on S3).
BLOCK_SIZE = 32 << 20
#: fsspec's cache that fetches the next block on a worker thread while this one is copied
#: (network and disk overlap); with two blocks kept, at most three are in memory. The file's
#: close() joins the worker.
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
    """An object open for reading: ``size``, ``validators``, ``seek``, ``readinto``, ``close``."""

    def __init__(self, url: str, fs: Any, path: str, stream: Any, details: Mapping[str, Any]):
        self.url = url
        self.fs = fs
        self.path = path
        self.stream = stream
        self.size = int(details["size"])
        self.validators = _validators(details)

    def seek(self, offset: int) -> None:
        """Position the next read at byte ``offset``."""
        self.stream.seek(offset)

    def readinto(self, view: memoryview) -> int:
        """Read into ``view``; :class:`Expired` when the object changed since it was opened."""
        try:
            n: int = self.stream.readinto(view)
        except Exception as exc:
            if _expired(exc):
                raise Expired(f"{redact_url(self.url)} changed while it was read") from None
            raise
        return n

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.close()

    def __enter__(self) -> Opened:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _refused(url: str, label: str, exc: BaseException) -> DownloadError:
    scheme = url.partition("://")[0].lower()
    return DownloadError(
        f"{label}: {redact_url(url)} refused access ({type(exc).__name__}: {exc}); "
        f"{package_for(scheme)} reads credentials from its usual chain "
        "(for s3: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance roles)"
    )


def open_object(url: str, label: str) -> Opened:
    """Open the object at ``url`` (a configured mirror's model URL) for reading.

    Raises :class:`~omnihub.errors.ModelNotFoundError` when there is no such object,
    :class:`~omnihub.errors.DownloadError` when access is refused or the store cannot be
    reached, :class:`~omnihub.errors.ConfigurationError` when the protocol's implementation
    is not installed.
    """
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
