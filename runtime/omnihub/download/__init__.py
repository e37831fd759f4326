"""One verified, resumable transfer of a URL into a partial file: :func:`download`.

The whole path, top to bottom: GET through the process's session (:mod:`._http`: retries
before the body, redirects under the transport policy); stream the body into
``<file>.incomplete`` hashing each chunk (:mod:`._copy`); if it breaks off, resume with
``Range`` + ``If-Range`` from the resume record (:mod:`._partial`), accepting a 206 only if
its validators are the saved ones; when one stream is slow on a large file, fetch the rest
over ranged connections (:mod:`._parallel`); check size and sha256. ``file://`` mirrors go
through the same writer, and so do object-store mirrors (``s3://``, ``gs://``, ``az://``,
...: :mod:`._fsspec`), resumed by byte offset with their ETag saved and compared. The caller
publishes the verified partial (fsync, ``os.replace``, fsync of the directory): this package
never touches the final path.

The private modules import nothing from each other; this module wires them together.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from omnihub.download import _copy, _fsspec, _http, _parallel, _partial
from omnihub.download._http import MAX_REDIRECTS, Transient
from omnihub.errors import DownloadError, IntegrityError, ModelNotFoundError
from omnihub.progress import progress_bar
from omnihub.urls import check_remote_url, is_object_store, redact_url

if TYPE_CHECKING:
    import requests

    from omnihub.config import Config

__all__ = ["MAX_REDIRECTS", "Transfer", "download"]

logger = logging.getLogger("omnihub")

#: Files smaller than this get no resume record: fetching them again costs less.
RESUME_MIN = 1 << 20
#: A read returns what it has after this long, so the minimum-progress rule sees a drip.
_FILL_SECONDS = 0.25


@attrs.frozen
class Transfer:
    """The verified outcome of :func:`download`."""

    sha256: str
    size: int
    url: str  # the URL asked for (before redirects)
    resumed_from: int  # bytes reused from an earlier partial, 0 for a fresh transfer


@attrs.define
class _Job:
    """One :func:`download` call: what every attempt needs."""

    url: str
    partial: Path
    config: Config
    private: Mapping[str, str]
    expected_size: int | None
    label: str
    single_only: bool = False  # a server refused ranges: no parallel attempt again
    pace: _http.Pace | None = None  # the current attempt's minimum-progress rule


class _Restart(Transient):
    """The partial cannot be continued (changed upstream, range refused): start over now."""


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
    """Fetch ``url`` into ``partial`` (resuming it if possible) and verify size and sha256.

    ``private_headers`` (e.g. ``Authorization``) are sent only to ``url``'s own origin.
    Raises :class:`~omnihub.errors.ModelNotFoundError` (404/410, missing file),
    :class:`~omnihub.errors.DownloadError` (401/403, retries exhausted; its subclass
    :class:`~omnihub.errors.WriteError` for disk errors) or
    :class:`~omnihub.errors.IntegrityError` (size or sha256 mismatch; ``partial`` removed).
    """
    check_remote_url(url, allow_http=config.allow_http, allow_file=allow_file)
    if url.lower().startswith("file:"):
        job = _Job(url, partial, config, {}, expected_size, label)
        hasher, size = _local(job)
        return Transfer(_verify(job, hasher, size, expected_sha256), size, url, 0)
    job = _Job(url, partial, config, dict(private_headers or {}), expected_size, label)
    attempt = _store_attempt if is_object_store(url) else _attempt
    failures = 0
    restarted = False
    while True:
        try:
            hasher, size, resumed = attempt(job)
        except _Restart as exc:
            logger.info("%s: %s; starting over", label, exc)
            failures += 1
            if failures > config.retries + 1:
                raise DownloadError(f"{label}: downloading {redact_url(url)}: {exc}") from None
            continue
        except Transient as exc:
            failures += 1
            if failures > config.retries:
                kept = " (partial data kept for resume)" if partial.exists() else ""
                raise DownloadError(
                    f"{label}: downloading {redact_url(url)} failed after {failures} attempts: "
                    f"{exc}{kept}"
                ) from None
            delay = _http.backoff(config.backoff, config.backoff_max, failures)
            logger.warning("%s: %s from %s; retrying in %.2f s", label, exc, redact_url(url), delay)
            _http.pause(delay)
            continue
        try:
            digest = _verify(job, hasher, size, expected_sha256)
        except IntegrityError:
            if resumed and not restarted:
                # The reused prefix may be what is wrong: one clean restart before failing.
                logger.warning("%s: resumed file failed verification; starting over", label)
                restarted = True
                continue
            raise
        _partial.discard_record(partial)
        return Transfer(sha256=digest, size=size, url=url, resumed_from=resumed)


def _verify(job: _Job, hasher: Any, size: int, expected_sha256: str | None) -> str:
    digest: str = hasher.hexdigest()
    problem = None
    if job.expected_size is not None and size != job.expected_size:
        problem = f"size {size} bytes, expected {job.expected_size}"
    elif expected_sha256 is not None and digest != expected_sha256.lower():
        problem = f"sha256 {digest}, expected {expected_sha256.lower()}"
    if problem:
        _partial.discard(job.partial)
        raise IntegrityError(
            f"{job.label}: {redact_url(job.url)} delivered {problem}; the file was discarded"
        )
    return digest


def _local(job: _Job) -> tuple[Any, int]:
    """The ``file://`` transport: copy a configured mirror's file through the same writer.

    Under the download rules: only a regular file (a FIFO, ``/dev/zero`` or a directory,
    even behind a symlink, is refused without blocking), at most its size at open (or the
    catalogue's size) plus one byte, and never readable by more users than the source.
    """
    import stat
    from urllib.parse import unquote, urlsplit
    from urllib.request import url2pathname

    url, partial, expected_size, label = job.url, job.partial, job.expected_size, job.label
    parts = urlsplit(url)
    if parts.netloc not in {"", "localhost"}:
        raise DownloadError(f"{label}: file URL {redact_url(url)!r} names a remote host")
    source = Path(url2pathname(unquote(parts.path)))
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        src_fd = os.open(source, flags)
    except FileNotFoundError:
        raise ModelNotFoundError(f"{label}: {source} does not exist (mirror {url})") from None
    except OSError as exc:
        raise DownloadError(f"{label}: cannot read {source}: {exc.strerror or exc}") from None
    st = os.fstat(src_fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(src_fd)
        raise DownloadError(
            f"{label}: {source} (mirror {redact_url(url)}) is not a regular file "
            f"({_kind(st.st_mode)}); refusing to copy it"
        )
    os.set_blocking(src_fd, True)
    hasher = hashlib.sha256()
    with os.fdopen(src_fd, "rb", buffering=0) as src:
        if expected_size is None:  # else the copy stops one byte past it and _verify says so
            _check_length(job, st.st_size, 0)
        fd = _open(partial, append=False, mode=stat.S_IMODE(st.st_mode))
        try:
            limit = (st.st_size if expected_size is None else expected_size) + 1
            size = _copy.copy(src.readinto, fd, hasher, size=_copy.buffer_size(limit), limit=limit)
        except _copy.WriteFailed as exc:
            raise _partial.write_error(partial, exc.error) from None
        except OSError as exc:
            _partial.discard(partial)
            raise DownloadError(f"{label}: cannot read {source}: {exc}") from None
        finally:
            os.close(fd)
    if expected_size is None and size > st.st_size:
        _partial.discard(partial)
        raise DownloadError(f"{label}: {source} grew while it was copied; try again")
    return hasher, size


def _kind(mode: int) -> str:
    import stat

    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a plain file"


def _open(partial: Path, *, append: bool, mode: int = 0o644) -> int:
    try:
        return _partial.open_partial(partial, append=append, mode=mode)
    except OSError as exc:
        raise _partial.write_error(partial, exc) from None


def _check_length(job: _Job, total: int, offset: int) -> None:
    """Refuse an announced length before writing: the wrong size for the catalogue
    (IntegrityError), more than the disk has for the catalogue's own size (WriteError), or
    more than the disk has when no size is declared -- that source's failure, so the next
    one is tried (DownloadError)."""
    partial = job.partial
    if job.expected_size is not None and total != job.expected_size:
        _partial.discard(partial)
        raise IntegrityError(
            f"{job.label}: {redact_url(job.url)} announces {total} bytes, "
            f"expected {job.expected_size}; refusing a file of the wrong size"
        )
    free = _free_space(partial.parent)
    if free is not None and total - offset > free:
        if job.expected_size is not None:
            raise _partial.write_error(partial, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        _partial.discard(partial)
        raise DownloadError(
            f"{job.label}: {redact_url(job.url)} announces {total} bytes, more than the "
            f"{free} bytes free in {partial.parent}"
        )


def _free_space(directory: Path) -> int | None:
    import shutil

    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def _body_errors() -> tuple[type[BaseException], ...]:
    """What a broken-off body raises (read side): worth resuming."""
    import http.client

    import requests
    import urllib3

    return (
        urllib3.exceptions.HTTPError,
        requests.RequestException,
        http.client.HTTPException,
        OSError,
    )


def _reader(response: requests.Response, decode: bool) -> Any:
    """``readinto`` over the body, returning what one receive brought (``read1``), so the
    minimum-progress rule sees a dripping body byte by byte; an unrequested content encoding
    is decoded (urllib3 bounds each decoded read by the buffer, so a bomb is read in pieces)."""
    import time

    raw = response.raw
    pending: list[BaseException] = []  # a failure after some bytes: raised on the next read

    def readinto(view: memoryview) -> int:
        # Fill the buffer from successive receives (large writes and hash updates on a fast
        # stream), but return within _FILL_SECONDS, so a drip is seen by the pace rule.
        if pending:
            raise pending.pop()
        filled, began = 0, time.monotonic()
        while filled < len(view):
            try:
                block = raw.read1(len(view) - filled, decode_content=decode)
            except Exception as exc:
                if not filled:
                    raise
                pending.append(exc)  # keep the bytes received before it
                break
            if not block:
                break
            view[filled : filled + len(block)] = block
            filled += len(block)
            if time.monotonic() - began >= _FILL_SECONDS:
                break
        return filled

    return readinto


def _bound(job: _Job, offset: int) -> int:
    """How many more bytes a body without a trusted length may bring: one past the
    catalogue's size, else ``OMNIHUB_MAX_SIZE``, else the free space less a 5% (at least
    64 MiB) reserve -- never until the disk is full."""
    if job.expected_size is not None:
        return max(job.expected_size - offset, 0) + 1
    cap = job.config.max_size
    if not cap:
        free = _free_space(job.partial.parent)
        cap = (1 << 62) if free is None else max(free - max(free // 20, 64 << 20), 0)
    return max(cap - offset, 0) + 1


def _attempt(job: _Job) -> tuple[Any, int, int]:
    """One request: ``(hasher, size, resumed_from)`` with the partial complete, or raise."""
    partial, config = job.partial, job.config
    job.pace = _http.Pace(config)
    parallel_ok = config.connections > 1 and hasattr(os, "pwrite") and not job.single_only
    saved = _partial.load(partial, job.url)
    if saved is not None and saved.segments:
        total = saved.total
        if (
            parallel_ok
            and total == _partial.size_of(partial)
            and job.expected_size in (None, total)
        ):
            segments = [_parallel.Segment(a, b, c) for a, b, c in saved.segments]
            return _run_parallel(job, saved, segments)
        saved = None
    offset = (_partial.size_of(partial) or 0) if saved is not None else 0
    headers = {"Accept-Encoding": "identity"}
    if saved is not None and saved.validator is not None:
        headers.update({"Range": f"bytes={offset}-", "If-Range": saved.validator})
    response = _http.get(job.url, headers, job.private, config, job.label)
    with response:
        status = response.status_code
        encoded = response.headers.get("Content-Encoding", "identity").lower()
        if status == 206 and encoded not in {"identity", ""}:
            _partial.discard(partial)
            raise _Restart(f"HTTP 206 with Content-Encoding {encoded} (a range of encoded bytes)")
        if status == 416 or (status == 206 and saved is None):
            _partial.discard(partial)
            raise _Restart(f"HTTP {status} resuming at byte {offset}")
        if status == 206 and saved is not None:
            start = _http.content_range(response.headers.get("Content-Range"))
            if start is None or start[0] != offset or not saved.matches(response.headers):
                _partial.discard(partial)
                raise _Restart("the file changed on the server since the partial download")
            hasher = _partial.hash_prefix(partial, offset)
        else:
            if offset:
                logger.info("%s: server sent the whole file instead of a range", job.label)
            offset, hasher = 0, hashlib.sha256()
        return _receive(job, response, offset, hasher, parallel_ok)


def _receive(
    job: _Job, response: requests.Response, offset: int, hasher: Any, parallel_ok: bool
) -> tuple[Any, int, int]:
    """Stream ``response`` (a 200, or a 206 from ``offset``) into the partial."""
    partial, config = job.partial, job.config
    encoding = response.headers.get("Content-Encoding", "identity").lower()
    encoded = encoding not in {"identity", ""}
    if encoded and encoding not in response.raw.CONTENT_DECODERS:
        raise DownloadError(
            f"{job.label}: {redact_url(job.url)} answered with Content-Encoding {encoding!r}, "
            "which was not asked for (Accept-Encoding: identity) and cannot be decoded"
        )
    length = response.headers.get("Content-Length", "")
    # an encoded body's Content-Length counts encoded bytes: no bound on the decoded file
    total = offset + int(length) if length.isdigit() and not encoded else None
    if total is not None:
        _check_length(job, total, offset)
    record = _partial.Resume.of(job.url, response.headers, total)
    if offset == 0:
        _partial.discard(partial)
        # a small file is cheaper to fetch again; a decoded body has no byte ranges to resume
        if (total is None or total >= RESUME_MIN) and not encoded:
            _partial.save(partial, record)
    fd = _open(partial, append=offset > 0)
    switch = None
    if (
        parallel_ok
        and total is not None
        and total - offset >= max(config.parallel_min_size, 2)
        and response.headers.get("Accept-Ranges", "").lower() == "bytes"
        and record.validator is not None
    ):
        switch = _parallel.Switch(asked=config.sources.get("connections", "default") != "default")
    # no trustworthy length: at most one byte past the expected size or the size bound
    limit = total - offset if total is not None else _bound(job, offset)
    bar = progress_bar(total, offset, job.label, disabled=config.disable_progress)
    try:
        moved = _copy.copy(
            _paced(job, _reader(response, encoded)),
            fd,
            hasher,
            size=_copy.buffer_size(limit),
            limit=limit,
            progress=bar.update,
            stop=switch,
        )
    except _copy.WriteFailed as exc:
        raise _partial.write_error(partial, exc.error) from None
    except _body_errors() as exc:
        got = _partial.size_of(partial) or 0
        raise Transient(f"{type(exc).__name__} after {got} bytes") from None
    finally:
        os.close(fd)
        bar.close()
    size = offset + moved
    if switch is not None and switch.switched and total is not None and size < total:
        segments = _parallel.split_rest(size, total, config.connections)
        first = _SegmentBody(response, job)
        return _run_parallel(job, record, segments, first=first, hasher=hasher, resumed=offset)
    if total is not None and size != total:
        raise Transient(f"connection closed after {size} of {total} bytes")
    if total is None and job.expected_size is None and moved == limit:
        _partial.discard(partial)
        how = f"decoded from {encoding}, " if encoded else ""
        raise DownloadError(
            f"{job.label}: {redact_url(job.url)} sent more than {limit - 1 + offset} bytes "
            f"({how}no size announced); stopped at the size bound (OMNIHUB_MAX_SIZE or the "
            "free disk space) and discarded the file"
        )
    return hasher, size, offset


def _store_attempt(job: _Job) -> tuple[Any, int, int]:
    """One read of an object-store object (:mod:`._fsspec`): ``(hasher, size, resumed_from)``.

    Resumes at the partial's size when the resume record's size and validators (ETag) are the
    object's; an object replaced since, or while it is read, starts over from byte 0.
    """
    partial, config = job.partial, job.config
    saved = _partial.load(partial, job.url)
    with _fsspec.open_object(job.url, job.label) as opened:
        total = opened.size
        offset = (_partial.size_of(partial) or 0) if saved is not None else 0
        if saved is not None and (
            saved.segments
            or saved.total != total
            or offset > total
            or not saved.matches(opened.validators)
        ):
            logger.info("%s: %s changed since the partial download; starting over",
                        job.label, redact_url(job.url))  # fmt: skip
            offset = 0
        _check_length(job, total, offset)
        hasher = _partial.hash_prefix(partial, offset) if offset else hashlib.sha256()
        if offset == 0:
            _partial.discard(partial)
            if total >= RESUME_MIN:  # a small file is cheaper to fetch again
                _partial.save(partial, _partial.Resume.of(job.url, opened.validators, total))
        fd = _open(partial, append=offset > 0)
        bar = progress_bar(total, offset, job.label, disabled=config.disable_progress)
        try:
            opened.seek(offset)
            moved = _copy.copy(
                opened.readinto,
                fd,
                hasher,
                size=_copy.buffer_size(total - offset),
                limit=total - offset,
                progress=bar.update,
            )
        except _copy.WriteFailed as exc:
            raise _partial.write_error(partial, exc.error) from None
        except _fsspec.Expired as exc:
            _partial.discard(partial)
            raise _Restart(str(exc)) from None
        except Exception as exc:  # the implementation's own network errors: resume
            got = _partial.size_of(partial) or 0
            raise Transient(f"{type(exc).__name__} after {got} bytes") from None
        finally:
            os.close(fd)
            bar.close()
        size = offset + moved
        if size != total:
            raise Transient(f"the object ended after {size} of {total} bytes")
        if _fsspec.changed(opened):
            _partial.discard(partial)
            raise _Restart(f"{redact_url(job.url)} changed while it was read")
    return hasher, size, offset


class _RangeRefused(Exception):
    """A segment's range was answered with the whole file, a 416 or other validators."""


def _paced(job: _Job, readinto: Any) -> Any:
    return readinto if job.pace is None else job.pace.wrap(readinto)


class _SegmentBody:
    """A segment's response body: ``readinto`` (under the attempt's pace) and a ``close``
    that wakes a blocked read."""

    def __init__(self, response: requests.Response, job: _Job) -> None:
        self.response = response
        self.readinto = _paced(job, _reader(response, False))

    def close(self) -> None:
        self.response.raw.shutdown()
        self.response.close()


def _run_parallel(
    job: _Job,
    record: _partial.Resume,
    segments: list[_parallel.Segment],
    *,
    first: _SegmentBody | None = None,
    hasher: Any = None,
    resumed: int | None = None,
) -> tuple[Any, int, int]:
    """Fetch every segment's missing bytes over parallel connections (see :mod:`._parallel`).

    ``first`` continues a switched single stream as segment 0; ``hasher`` holds its bytes.
    """
    partial, config = job.partial, job.config
    total = segments[-1].end
    already = sum(seg.done for seg in segments)

    def open_range(start: int, end: int) -> _SegmentBody:
        headers = {"Accept-Encoding": "identity", "Range": f"bytes={start}-{end}"}
        headers["If-Range"] = record.validator or ""
        response = _http.get(job.url, headers, job.private, config, job.label)
        got = _http.content_range(response.headers.get("Content-Range"))
        status = response.status_code
        if status == 206 and got and got[0] == start and record.matches(response.headers):
            return _SegmentBody(response, job)
        response.close()
        raise _RangeRefused(f"HTTP {status} for bytes {start}-{end}")

    def save(segs: list[_parallel.Segment]) -> None:
        done = tuple((seg.start, seg.end, seg.done) for seg in segs)
        _partial.save(partial, attrs.evolve(record, total=total, segments=done))

    try:
        fd = _partial.open_segments(partial, total)
    except OSError as exc:
        if first is not None:
            first.close()
        raise _partial.write_error(partial, exc) from None
    bar = progress_bar(total, already, job.label, disabled=config.disable_progress)
    logger.info("%s: fetching %d bytes over %d connections", job.label, total, len(segments))
    try:
        save(segments)
        hasher = _parallel.run(
            fd,
            segments,
            total,
            open_range=open_range,
            first=first,
            progress=bar.update,
            save=save,
            hasher=hasher,
            hashed=already if hasher is not None else 0,
        )
    except _parallel.SegmentFailed as failed:
        cause = failed.cause
        if failed.writing and isinstance(cause, OSError):
            raise _partial.write_error(partial, cause) from None
        if isinstance(cause, _RangeRefused):
            _partial.discard(partial)
            job.single_only = True
            raise _Restart(f"server refused a byte range ({cause}); one stream now") from None
        if isinstance(cause, (DownloadError, ModelNotFoundError, IntegrityError, Transient)):
            raise cause from None
        done = sum(seg.done for seg in segments)
        raise Transient(f"{failed} after {done} of {total} bytes") from None
    finally:
        os.close(fd)
        bar.close()
    return hasher, total, already if resumed is None else resumed
