"""One verified, resumable transfer of a URL into a partial file.

:func:`download` streams a remote file into ``<file>.incomplete`` while computing its
sha256, resumes a partial left by an earlier (killed) run with ``Range`` + ``If-Range``,
retries transient failures (connection errors, 408, 429, 5xx) with exponential backoff and
jitter honouring ``Retry-After``, and checks size and sha256 before it fsyncs. It never
touches the final path: the caller publishes the verified partial with an atomic
``os.replace``. 401/403/404 fail at once. Redirects are followed by hand so that the
transport policy (:func:`omnihub.urls.check_remote_url`) applies to every hop and
credentials are dropped when a redirect leaves the original host.

requests is imported only here, only when a download actually happens.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from omnihub._parallel import ParallelFailed, Segment, plan
from omnihub._parallel import run as run_segments
from omnihub._stream import Flusher, WriteFailed, pump
from omnihub.errors import DownloadError, IntegrityError, ModelNotFoundError
from omnihub.progress import progress_bar
from omnihub.urls import check_remote_url, redact_url

if TYPE_CHECKING:
    import requests

    from omnihub.config import Config

__all__ = ["CHUNK_SIZE", "MAX_REDIRECTS", "Transfer", "WriteError", "download", "meta_path"]

logger = logging.getLogger("omnihub")

#: Bytes per read/hash/write step: large enough that per-chunk overhead is negligible,
#: small enough that memory stays flat whatever the file size.
CHUNK_SIZE = 1 << 20
#: Redirect hops followed before giving up (a loop is reported, not followed forever).
MAX_REDIRECTS = 10

_NOT_FOUND = frozenset({404, 410})
_DENIED = frozenset({401, 403})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

#: Replaced by tests that want to observe backoff without waiting; production uses sleep.
sleep: Callable[[float], None] = time.sleep


class WriteError(DownloadError):
    """The local disk refused the download (full, read-only, quota): no mirror can help."""


@attrs.frozen
class Transfer:
    """The verified outcome of :func:`download`."""

    sha256: str
    size: int
    url: str  # the URL asked for (before redirects)
    resumed_from: int  # bytes reused from an earlier partial, 0 for a fresh transfer


class _Retry(Exception):
    """A transient failure: try again after ``delay`` (None: exponential backoff)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


def meta_path(partial: Path) -> Path:
    """Where the resume validators of ``partial`` are kept (``<file>.incomplete.json``)."""
    return partial.with_name(partial.name + ".json")


def _discard(partial: Path) -> None:
    for p in (partial, meta_path(partial)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _resume_state(partial: Path, url: str) -> tuple[int, str | None]:
    """Bytes already in ``partial`` and the validator to resume them with, if usable."""
    try:
        size = partial.stat().st_size
        meta = json.loads(meta_path(partial).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0, None
    if not isinstance(meta, dict) or meta.get("url") != url or size == 0 or "segments" in meta:
        return 0, None
    validator = meta.get("etag") or meta.get("last_modified")
    if not isinstance(validator, str) or validator.startswith("W/"):
        return 0, None  # weak ETags cannot validate a byte range
    return size, validator


def _write_meta(partial: Path, url: str, headers: Mapping[str, str]) -> None:
    meta = {
        "url": url,
        "etag": headers.get("ETag"),
        "last_modified": headers.get("Last-Modified"),
    }
    tmp = meta_path(partial).with_name(meta_path(partial).name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp, meta_path(partial))


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _backoff(config: Config, attempt: int) -> float:
    """Exponential backoff with equal jitter: half fixed, half random."""
    ceiling = min(config.backoff_max, config.backoff * 2.0 ** (attempt - 1))
    jitter: float = random.uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


def _origin(url: str) -> tuple[str, str | None, int | None]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme.lower(), parts.hostname, parts.port


def _open(
    session: requests.Session,
    url: str,
    headers: dict[str, str],
    private: Mapping[str, str],
    config: Config,
) -> requests.Response:
    """GET ``url`` following redirects by hand; ``private`` headers stay on the first origin."""
    from urllib.parse import urljoin

    import requests

    current = url
    origin = _origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        check_remote_url(current, allow_http=config.allow_http, allow_file=False)
        sent = {**headers, **private} if _origin(current) == origin else headers
        try:
            response = session.get(
                current,
                headers=sent,
                stream=True,
                allow_redirects=False,
                timeout=(config.connect_timeout, config.read_timeout),
            )
        except requests.exceptions.SSLError as exc:
            raise DownloadError(f"TLS error fetching {redact_url(current)}: {exc}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retry(f"{type(exc).__name__} fetching {redact_url(current)}") from None
        if response.status_code in _REDIRECTS and "Location" in response.headers:
            location = response.headers["Location"]
            response.close()
            current = urljoin(current, location)
            continue
        return response
    raise DownloadError(
        f"too many redirects (more than {MAX_REDIRECTS}) fetching {redact_url(url)}; "
        f"last location {redact_url(current)}"
    )


def _hash_existing(partial: Path, size: int) -> Any:
    hasher = hashlib.sha256()
    with partial.open("rb") as fh:
        remaining = size
        while remaining:
            block = fh.read(min(CHUNK_SIZE, remaining))
            if not block:
                break
            hasher.update(block)
            remaining -= len(block)
    return hasher


def _parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    """``(start, total)`` of ``bytes start-end/total``; None when malformed."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, total = value[6:].partition("/")
    start, _, _end = span.partition("-")
    try:
        return int(start), (None if total.strip() == "*" else int(total))
    except ValueError:
        return None


def _body_reader(response: requests.Response, encoded: bool) -> Callable[[memoryview], int | None]:
    """A ``readinto`` over the response body.

    Plain bodies are read straight from the underlying ``http.client`` response into the
    pump's reused buffers (no per-chunk allocation); content-encoded ones go through
    urllib3's decoder.
    """
    raw = response.raw
    fp = getattr(raw, "_fp", None)
    if not encoded and fp is not None and callable(getattr(fp, "readinto", None)):
        readinto: Callable[[memoryview], int | None] = fp.readinto
        return readinto

    def decoded(view: memoryview) -> int:
        block = raw.read(len(view), decode_content=True)
        view[: len(block)] = block
        return len(block)

    return decoded


def _limited(
    readinto: Callable[[memoryview], int | None], limit: int
) -> Callable[[memoryview], int | None]:
    """``readinto`` that stops (returns 0) after ``limit`` bytes."""
    left = [max(limit, 0)]

    def read(view: memoryview) -> int:
        if left[0] <= 0:
            return 0
        n = readinto(view[: left[0]]) or 0
        left[0] -= n
        return n

    return read


def _parallel_possible(config: Config, state: Mapping[str, bool]) -> bool:
    return config.connections > 1 and hasattr(os, "pwrite") and not state.get("single_only")


def _strong_validator(headers: Mapping[str, Any]) -> str | None:
    """A strong ETag, else Last-Modified, from response headers or a saved meta record."""
    etag = headers.get("ETag") or headers.get("etag")
    if isinstance(etag, str) and etag and not etag.startswith("W/"):
        return etag
    modified = headers.get("Last-Modified") or headers.get("last_modified")
    return modified if isinstance(modified, str) and modified else None


def _parallel_state(
    partial: Path, url: str, expected_size: int | None
) -> tuple[list[Segment], int, dict[str, Any]] | None:
    """The saved segments of a parallel partial download of ``url``, if it can be resumed."""
    try:
        meta = json.loads(meta_path(partial).read_text(encoding="utf-8"))
        size = partial.stat().st_size
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("url") != url or "segments" not in meta:
        return None
    try:
        total = int(meta["total"])
        segments = [Segment(int(a), int(b), int(c)) for a, b, c in meta["segments"]]
    except (KeyError, TypeError, ValueError):
        return None
    valid = (
        size == total
        and (expected_size is None or expected_size == total)
        and _strong_validator(meta) is not None
        and segments
        and segments[0].start == 0
        and segments[-1].end == total
        and all(a.end == b.start for a, b in itertools.pairwise(segments))
        and all(0 <= s.done <= s.end - s.start for s in segments)
    )
    return (segments, total, meta) if valid else None


class _RangeRefused(Exception):
    """The server answered a segment's range request with the whole file (or a 416)."""


class _Body:
    """A segment body: reads straight from the response, closes response and session."""

    def __init__(self, response: requests.Response, session: requests.Session | None) -> None:
        self.response = response
        self.session = session
        self.readinto = _body_reader(response, False)

    def close(self) -> None:
        self.response.close()
        if self.session is not None:
            self.session.close()


def _attempt_parallel(
    url: str,
    partial: Path,
    *,
    segments: list[Segment],
    total: int,
    meta: dict[str, Any],
    first: requests.Response | None,
    config: Config,
    private: Mapping[str, str],
    label: str,
    state: dict[str, bool],
) -> tuple[Any, int, int]:
    """Fetch the missing bytes of every segment over parallel connections (see _parallel)."""
    import http.client

    import requests
    import urllib3

    validator = _strong_validator(meta) or ""
    resumed = sum(seg.done for seg in segments)

    def open_range(start: int, end: int) -> _Body:
        session = requests.Session()
        session.headers["User-Agent"] = "omnihub/0.1"
        headers = {
            "Accept-Encoding": "identity",
            "Range": f"bytes={start}-{end}",
            "If-Range": validator,
        }
        try:
            response = _open(session, url, headers, private, config)
        except BaseException:
            session.close()
            raise
        status = response.status_code
        content_range = _parse_content_range(response.headers.get("Content-Range"))
        if status == 206 and content_range is not None and content_range[0] == start:
            return _Body(response, session)
        response.close()
        session.close()
        if status in (200, 206, 416):
            raise _RangeRefused(f"HTTP {status} for bytes {start}-{end}")
        if status in _NOT_FOUND:
            raise ModelNotFoundError(f"{label}: {redact_url(url)} answered HTTP {status}")
        if status in _DENIED:
            raise DownloadError(f"{label}: {redact_url(url)} answered HTTP {status}")
        raise _Retry(f"HTTP {status} for bytes {start}-{end}")

    def classify(exc: BaseException) -> str:
        if isinstance(exc, _RangeRefused):
            return "changed"
        if isinstance(exc, (_Retry, ConnectionError)):
            return "network"
        if isinstance(
            exc,
            (urllib3.exceptions.HTTPError, requests.RequestException, http.client.HTTPException),
        ):
            return "network"
        if isinstance(exc, OSError) and not isinstance(exc, DownloadError):
            return "network"
        return "fatal"

    def save(segs: list[Segment]) -> None:
        data = {**meta, "segments": [[seg.start, seg.end, seg.done] for seg in segs]}
        tmp = meta_path(partial).with_name(meta_path(partial).name + f".{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, meta_path(partial))

    fresh = first is not None
    try:
        if fresh:
            _discard(partial)
        fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        if first is not None:
            first.close()
        raise _write_error(partial, exc) from None
    bar = progress_bar(total, resumed, label, disabled=config.disable_progress)
    bar_lock = threading.Lock()

    def progress(n: int) -> None:
        with bar_lock:
            bar.update(n)

    try:
        if fresh:
            try:
                os.ftruncate(fd, total)
            except OSError as exc:
                raise _write_error(partial, exc) from None
            save(segments)
        logger.info(
            "%s: fetching %d bytes over %d connections (%d already here)",
            label,
            total,
            sum(1 for seg in segments if not seg.complete),
            resumed,
        )
        try:
            hasher = run_segments(
                fd,
                segments,
                total,
                open_range=open_range,
                classify=classify,
                first=_Body(first, None) if first is not None else None,
                progress=progress,
                save=save,
            )
        except ParallelFailed as failed:
            if failed.kind == "write" and isinstance(failed.cause, OSError):
                raise _write_error(partial, failed.cause) from None
            if failed.kind == "changed":
                _discard(partial)
                state["single_only"] = True
                raise _Retry(
                    f"server refused a byte range ({failed.cause}); starting over as one stream",
                    delay=0.0,
                ) from None
            if failed.kind == "network":
                done = sum(seg.done for seg in segments)
                raise _Retry(f"{failed} after {done} of {total} bytes") from None
            if isinstance(failed.cause, Exception):
                raise failed.cause from None
            raise
        try:
            os.fsync(fd)
        except OSError as exc:
            raise _write_error(partial, exc) from None
        return hasher, total, resumed
    finally:
        os.close(fd)
        bar.close()


def _write_error(partial: Path, exc: OSError) -> WriteError:
    _discard(partial)
    return WriteError(f"cannot write {partial}: {exc.strerror or exc}; nothing was kept")


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
        if (
            status == 200
            and not encoded
            and total is not None
            and total >= max(config.parallel_min_size, 2)
            and _parallel_possible(config, state)
            and response.headers.get("Accept-Ranges", "").lower() == "bytes"
            and _strong_validator(response.headers) is not None
        ):
            return _attempt_parallel(
                url,
                partial,
                segments=plan(total, config.connections),
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
            )
        try:
            if mode == "wb":
                _discard(partial)
            _write_meta(partial, url, response.headers if not encoded else {})
            fh = partial.open(mode, buffering=0)
        except OSError as exc:
            raise _write_error(partial, exc) from None
        bar = progress_bar(total, offset, label, disabled=config.disable_progress)
        readinto = _body_reader(response, encoded)
        if expected_size is not None and (total is None or encoded):
            # No trustworthy length: read one byte past the expected size at most, so that a
            # hostile mirror cannot fill the disk and verification still sees the overrun.
            readinto = _limited(readinto, expected_size - offset + 1)
        flusher = Flusher(fh.fileno())
        try:
            with fh:
                try:
                    size = offset + pump(readinto, flusher.write, hasher, progress=bar.update)
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
                try:
                    flusher.finish()
                except OSError as exc:
                    raise _write_error(partial, exc) from None
        finally:
            bar.close()
        if total is not None and size != total and not encoded:
            raise _Retry(f"connection closed after {size} of {total} bytes")
        return hasher, size, offset


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
            _discard(partial)
            fh = partial.open("wb", buffering=0)
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

    On success ``partial`` holds exactly the verified bytes, fsynced; the caller moves it
    into place. ``private_headers`` (e.g. ``Authorization``) are sent only to ``url``'s own
    origin. Raises :class:`~omnihub.errors.ModelNotFoundError` (404/410, missing file),
    :class:`~omnihub.errors.DownloadError` (401/403, retries exhausted, disk errors) or
    :class:`~omnihub.errors.IntegrityError` (size or sha256 mismatch; ``partial`` removed).
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


def _discard_meta(partial: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        meta_path(partial).unlink()
