"""One verified, resumable transfer of a URL into a partial file.

:func:`download` streams a remote file into ``<file>.incomplete`` while computing its
sha256, resumes a partial left by an earlier (killed) run with ``Range`` + ``If-Range``,
retries transient failures (connection errors, 408, 429, 5xx) with exponential backoff and
jitter honouring ``Retry-After``, and checks size and sha256 (see :mod:`omnihub._durable` for
when the bytes are fsynced). It never
touches the final path: the caller publishes the verified partial with an atomic
``os.replace``. 401/403/404 fail at once. Redirects are followed by hand so that the
transport policy (:func:`omnihub.urls.check_remote_url`) applies to every hop and
credentials are dropped when a redirect leaves the original host.

requests is imported only here, only when a download actually happens.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from omnihub import _direct
from omnihub._http import (
    _DENIED,
    _NOT_FOUND,
    MAX_REDIRECTS,
    _backoff,
    _body_reader,
    _limited,
    _open,
    _parse_content_range,
    _Retry,
    _retry_after,
)
from omnihub._partial import (
    WriteError,
    _discard,
    _discard_meta,
    _hash_existing,
    _open_partial,
    _preallocate,
    _resume_state,
    _write_error,
    _write_meta,
    meta_path,
)
from omnihub._ranged import (
    _attempt_parallel,
    _parallel_possible,
    _parallel_state,
    _split_rest,
    _strong_validator,
    _Switch,
)
from omnihub._splice import splice_body, splice_target
from omnihub._stream import CHUNK_SIZE, Flusher, WriteFailed, pump
from omnihub.errors import DownloadError, IntegrityError, ModelNotFoundError
from omnihub.progress import progress_bar
from omnihub.urls import check_remote_url, redact_url

if TYPE_CHECKING:
    import requests

    from omnihub.config import Config

__all__ = ["CHUNK_SIZE", "MAX_REDIRECTS", "Transfer", "WriteError", "download", "meta_path"]

logger = logging.getLogger("omnihub")

#: Replaced by tests that want to observe backoff without waiting; production uses sleep.
sleep: Callable[[float], None] = time.sleep


@attrs.frozen
class Transfer:
    """The verified outcome of :func:`download`."""

    sha256: str
    size: int
    url: str  # the URL asked for (before redirects)
    resumed_from: int  # bytes reused from an earlier partial, 0 for a fresh transfer


def _attempt(
    session: requests.Session,
    url: str,
    partial: Path,
    *,
    config: Config,
    private: Mapping[str, str],
    expected_size: int | None,
    label: str,
    state: dict[str, bool],
) -> tuple[Any, int, int]:
    """One request: returns ``(hasher, size, resumed_from)`` with ``partial`` complete."""
    import http.client

    import requests
    import urllib3

    if _parallel_possible(config, state):
        resumable = _parallel_state(partial, url, expected_size)
        if resumable is not None:
            saved_segments, saved_total, saved_meta = resumable
            return _attempt_parallel(
                url,
                partial,
                segments=saved_segments,
                total=saved_total,
                meta=saved_meta,
                first=None,
                config=config,
                private=private,
                label=label,
                state=state,
            )
    offset, validator = _resume_state(partial, url)
    headers = {"Accept-Encoding": "identity"}
    if offset and validator:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = validator
    else:
        offset = 0
    response = _open(session, url, headers, private, config)
    with response:
        status = response.status_code
        shown = redact_url(url)
        if status in _NOT_FOUND:
            raise ModelNotFoundError(f"{label}: {shown} answered HTTP {status} (not found)")
        if status in _DENIED:
            raise DownloadError(f"{label}: {shown} answered HTTP {status} (access denied)")
        if status == 416:
            _discard(partial)
            raise _Retry(f"HTTP 416 resuming at byte {offset}; starting over", delay=0.0)
        if status in (408, 429) or 500 <= status <= 599:
            delay = _retry_after(response.headers.get("Retry-After"))
            if delay is not None and delay > config.retry_after_max:
                raise DownloadError(
                    f"{label}: {shown} answered HTTP {status} asking to retry after {delay:.0f} s, "
                    f"more than OMNIHUB_RETRY_AFTER_MAX={config.retry_after_max:.0f}"
                )
            raise _Retry(f"HTTP {status}", delay)
        if status == 206 and offset:
            content_range = _parse_content_range(response.headers.get("Content-Range"))
            if content_range is None or content_range[0] != offset:
                _discard(partial)
                raise _Retry("server sent an unexpected Content-Range; starting over", delay=0.0)
            hasher = _hash_existing(partial, offset)
            mode = "ab"
        elif status == 200:
            if offset:
                logger.info(
                    "%s: server sent the whole file instead of a range; starting over", label
                )
            offset, hasher, mode = 0, hashlib.sha256(), "wb"
        else:
            raise DownloadError(f"{label}: {shown} answered unexpected HTTP {status}")
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        if expected_size is not None and total is not None and total != expected_size:
            _discard(partial)
            raise IntegrityError(
                f"{label}: {shown} announces {total} bytes, expected {expected_size}; "
                "refusing a file of the wrong size"
            )
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in {
            "identity",
            "",
        }
        try:
            if mode == "wb":
                _discard(partial)
            _write_meta(partial, url, response.headers if not encoded else {})
            fh = _open_partial(partial, append=mode == "ab")
            if total is not None and not encoded:
                try:
                    _preallocate(fh.fileno(), offset, total - offset)
                except OSError:
                    fh.close()
                    raise
        except OSError as exc:
            raise _write_error(partial, exc) from None
        bar = progress_bar(total, offset, label, disabled=config.disable_progress)
        readinto = _body_reader(response, encoded)
        if expected_size is not None and (total is None or encoded):
            # No trustworthy length: read one byte past the expected size at most, so that a
            # hostile mirror cannot fill the disk and verification still sees the overrun.
            readinto = _limited(readinto, expected_size - offset + 1)
        switch = (
            _Switch(config)
            if (
                status in (200, 206)
                and not encoded
                and total is not None
                and total - offset >= max(config.parallel_min_size, 2)
                and _parallel_possible(config, state)
                and response.headers.get("Accept-Ranges", "").lower() == "bytes"
                and _strong_validator(response.headers) is not None
            )
            else None
        )
        flusher = Flusher(fh.fileno())
        try:
            with fh:
                try:
                    size = offset + _receive(
                        response,
                        readinto,
                        fh.fileno(),
                        flusher,
                        hasher,
                        offset=offset,
                        left=None if encoded or total is None else total - offset,
                        progress=bar.update,
                        stop=switch.decide if switch is not None else None,
                        splice=config.splice,
                        direct_io=config.direct_io,
                    )
                except WriteFailed as exc:
                    raise _write_error(partial, exc.error) from None
                except (
                    urllib3.exceptions.HTTPError,
                    requests.RequestException,
                    http.client.HTTPException,
                    OSError,
                ) as exc:
                    got = partial.stat().st_size if partial.exists() else 0
                    raise _Retry(f"{type(exc).__name__} after {got} bytes") from None
                finally:
                    flusher.close()
                if switch is not None and switch.switched:
                    pass  # the parallel transfer below syncs the whole file at its end
                else:
                    try:
                        flusher.finish()
                    except OSError as exc:
                        raise _write_error(partial, exc) from None
        finally:
            bar.close()
        if switch is not None and switch.switched and total is not None:
            # The stream is slow: keep reading it for one share of the rest and fetch the
            # other shares over parallel connections.
            return _attempt_parallel(
                url,
                partial,
                segments=_split_rest(size, total, config.connections),
                total=total,
                meta={
                    "url": url,
                    "etag": response.headers.get("ETag"),
                    "last_modified": response.headers.get("Last-Modified"),
                    "total": total,
                },
                first=response,
                config=config,
                private=private,
                label=label,
                state=state,
                hasher=hasher,
                hashed=size,
                resumed=offset,
            )
        if total is not None and size != total and not encoded:
            raise _Retry(f"connection closed after {size} of {total} bytes")
        return hasher, size, offset


def _receive(
    response: requests.Response,
    readinto: Callable[[memoryview], int | None],
    fd: int,
    flusher: Flusher,
    hasher: Any,
    *,
    offset: int,
    left: int | None,
    progress: Callable[[int], object],
    stop: Callable[[int], bool] | None,
    splice: bool,
    direct_io: bool,
) -> int:
    """Copy the body into ``fd`` after ``offset``; the first path that applies, in order:

    direct writes for large bodies on Linux (:mod:`omnihub._direct`), then the zero-copy
    splice of plain HTTP (:mod:`omnihub._splice`), then the pump. ``left`` is the plain
    (identity-encoded) body length, None when it is unknown or encoded -- then only the
    pump applies.
    """
    if direct_io and left is not None and left >= _direct.MIN_SIZE:
        moved = _direct.direct_body(
            readinto, fd, offset=offset, hasher=hasher, progress=progress, stop=stop
        )
        if moved is not None:
            return moved
    http_response = getattr(response.raw, "_fp", None)
    sock = splice_target(http_response, left) if splice and left is not None else None
    if sock is not None and left is not None:
        try:
            # The partial is open write-only (append when resuming); splice needs an explicit
            # offset and the hashing thread reads the file back: reopen the same inode.
            rw = os.open(f"/proc/self/fd/{fd}", os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            rw = -1
        if rw >= 0:
            try:
                return splice_body(
                    http_response,
                    sock,
                    rw,
                    offset=offset,
                    left=left,
                    hasher=hasher,
                    flusher=flusher,
                    progress=progress,
                    stop=stop,
                )
            finally:
                os.close(rw)
    return pump(readinto, flusher.write, hasher, progress=progress, stop=stop)


def _verify(
    partial: Path,
    hasher: Any,
    size: int,
    *,
    url: str,
    expected_size: int | None,
    expected_sha256: str | None,
    label: str,
) -> str:
    digest: str = hasher.hexdigest()
    problem = None
    if expected_size is not None and size != expected_size:
        problem = f"size {size} bytes, expected {expected_size}"
    elif expected_sha256 is not None and digest != expected_sha256.lower():
        problem = f"sha256 {digest}, expected {expected_sha256.lower()}"
    if problem:
        _discard(partial)
        raise IntegrityError(
            f"{label}: {redact_url(url)} delivered {problem}; the file was discarded"
        )
    return digest


def _copy_local(
    url: str,
    partial: Path,
    *,
    expected_size: int | None,
    expected_sha256: str | None,
    label: str,
) -> Transfer:
    """The ``file://`` transport: copy a configured local mirror's file, hashing as it goes."""
    from urllib.parse import unquote, urlsplit
    from urllib.request import url2pathname

    parts = urlsplit(url)
    if parts.netloc not in {"", "localhost"}:
        raise DownloadError(f"{label}: file URL {redact_url(url)!r} names a remote host")
    source = Path(url2pathname(unquote(parts.path)))
    hasher = hashlib.sha256()
    try:
        src = source.open("rb", buffering=0)
    except FileNotFoundError:
        raise ModelNotFoundError(f"{label}: {source} does not exist (mirror {url})") from None
    except OSError as exc:
        raise DownloadError(f"{label}: cannot read {source}: {exc.strerror or exc}") from None
    with src:
        try:
            fh = _open_partial(partial, append=False)
        except OSError as exc:
            raise _write_error(partial, exc) from None
        flusher = Flusher(fh.fileno())
        with fh:
            try:
                size = pump(src.readinto, flusher.write, hasher)
            except WriteFailed as exc:
                raise _write_error(partial, exc.error) from None
            except OSError as exc:
                _discard(partial)
                raise DownloadError(f"{label}: cannot read {source}: {exc}") from None
            finally:
                flusher.close()
            try:
                flusher.finish()
            except OSError as exc:
                raise _write_error(partial, exc) from None
    digest = _verify(
        partial,
        hasher,
        size,
        url=url,
        expected_size=expected_size,
        expected_sha256=expected_sha256,
        label=label,
    )
    return Transfer(sha256=digest, size=size, url=url, resumed_from=0)


def download(
    url: str,
    partial: Path,
    *,
    config: Config,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    private_headers: Mapping[str, str] | None = None,
    allow_file: bool = False,
    label: str = "model",
) -> Transfer:
    """Fetch ``url`` into ``partial`` (resuming it if possible) and verify it.

    On success ``partial`` holds exactly the verified bytes -- fsynced, unless
    :func:`omnihub._durable.deferred` (then the caller makes them durable after publishing);
    the caller moves it into place. ``private_headers`` (e.g. ``Authorization``) are sent
    only to ``url``'s own origin. Raises :class:`~omnihub.errors.ModelNotFoundError`
    (404/410, missing file), :class:`~omnihub.errors.DownloadError` (401/403, retries
    exhausted, disk errors) or :class:`~omnihub.errors.IntegrityError` (size or sha256
    mismatch; ``partial`` removed).
    """
    check_remote_url(url, allow_http=config.allow_http, allow_file=allow_file)
    if url.lower().startswith("file:"):
        return _copy_local(
            url, partial, expected_size=expected_size, expected_sha256=expected_sha256, label=label
        )
    import requests

    private = dict(private_headers or {})
    attempt = 0
    restarted = False
    state: dict[str, bool] = {}
    with requests.Session() as session:
        session.headers["User-Agent"] = "omnihub/0.1"
        while True:
            try:
                hasher, size, resumed = _attempt(
                    session,
                    url,
                    partial,
                    config=config,
                    private=private,
                    expected_size=expected_size,
                    label=label,
                    state=state,
                )
            except _Retry as retry:
                attempt += 1
                if attempt > config.retries:
                    kept = " (partial data kept for resume)" if partial.exists() else ""
                    raise DownloadError(
                        f"{label}: downloading {redact_url(url)} failed after {attempt} attempts: "
                        f"{retry.reason}{kept}"
                    ) from None
                delay = retry.delay if retry.delay is not None else _backoff(config, attempt)
                logger.warning(
                    "%s: %s from %s; retrying in %.2f s (attempt %d of %d)",
                    label,
                    retry.reason,
                    redact_url(url),
                    delay,
                    attempt + 1,
                    config.retries + 1,
                )
                if delay:
                    sleep(delay)
                continue
            try:
                digest = _verify(
                    partial,
                    hasher,
                    size,
                    url=url,
                    expected_size=expected_size,
                    expected_sha256=expected_sha256,
                    label=label,
                )
            except IntegrityError:
                if resumed and not restarted:
                    # The reused prefix may be what is wrong: one clean restart before failing.
                    logger.warning("%s: resumed file failed verification; starting over", label)
                    restarted = True
                    continue
                raise
            _discard_meta(partial)
            return Transfer(sha256=digest, size=size, url=url, resumed_from=resumed)
