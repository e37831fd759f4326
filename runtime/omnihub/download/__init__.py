"""One verified, resumable transfer of a URL into a partial file: :func:`download`.

Each source only opens its body -- http(s) through the process's session (:mod:`._http`:
retries before the body, redirects under the transport policy, ``Range`` + ``If-Range`` from
the resume record, a 206 accepted only with the saved validators), ``file://`` mirrors, and
object stores (:mod:`._fsspec`, resumed by offset with the ETag compared) -- and one function,
:func:`_receive`, does the rest: check the announced length, keep the resume record, stream
into ``<file>.incomplete`` hashing each chunk (:mod:`._copy`), map failures, check the size.
A watchdog (:mod:`._watch`) enforces the liveness rule from outside the reading thread. A
slow single stream on a large file hands over to ranged connections (:mod:`._parallel`) by
saving its progress as segments and resuming from them. The caller publishes the verified
partial; this package never touches the final path. The private modules import nothing
from each other; this module wires them together.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from omnihub.download import _copy, _fsspec, _http, _parallel, _partial, _watch
from omnihub.download._http import MAX_REDIRECTS, TooSlow, Transient
from omnihub.errors import DownloadError, IntegrityError, ModelNotFoundError, OmnihubError
from omnihub.progress import progress_bar
from omnihub.urls import check_remote_url, is_object_store, redact_url

if TYPE_CHECKING:
    import requests

    from omnihub.config import Config

__all__ = ["MAX_REDIRECTS", "Transfer", "download"]

logger = logging.getLogger("omnihub")

#: Files smaller than this get no resume record: fetching them again costs less.
RESUME_MIN = 1 << 20
_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device"}


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
    switched_from: int | None = None  # a single stream from this offset handed over


@attrs.define
class _Body:
    """An opened body, what :func:`_receive` needs from any source."""

    read: Callable[[int], bytes]
    total: int | None  # the whole file's announced size; None: unknown
    offset: int = 0  # where the body starts (bytes already in the partial)
    record: _partial.Resume | None = None  # kept while it is copied; None: not resumable
    mode: int = 0o644
    watch: _watch.Watch | None = None
    switch: _parallel.Switch | None = None
    encoding: str | None = None  # an unrequested content encoding being decoded


class _Restart(Transient):
    """The partial cannot be continued (changed upstream, range refused): discard it and
    start over now."""


class _Switched(Exception):
    """A slow single stream saved its progress as segments: resume them in parallel."""


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
    job = _Job(url, partial, config, dict(private_headers or {}), expected_size, label)
    if url.lower().startswith("file:"):
        attempt = _local
    else:
        attempt = _store_attempt if is_object_store(url) else _attempt
    failures = 0
    restarted = False
    while True:
        try:
            hasher, size, resumed = attempt(job)
        except _Switched:
            continue
        except _Restart as exc:
            _partial.discard(partial)
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


def _receive(job: _Job, body: _Body) -> tuple[Any, int, int]:
    """The one receive path: stream ``body`` into the partial; ``(hasher, size, offset)``."""
    partial, total, offset, watch = job.partial, body.total, body.offset, body.watch
    limit = _limit(job, total, offset)
    if offset == 0:
        _partial.discard(partial)
        if body.record is not None and (total is None or total >= RESUME_MIN):
            _partial.save(partial, body.record)  # a small file is cheaper to fetch again
    try:
        fd = _partial.open_partial(partial, append=offset > 0, mode=body.mode)
    except OSError as exc:
        raise _partial.write_error(partial, exc) from None
    hasher = _partial.hash_prefix(partial, offset) if offset else hashlib.sha256()
    bar = progress_bar(total, offset, job.label, disabled=job.config.disable_progress)
    try:
        moved = _copy.copy(
            body.read,
            fd,
            hasher,
            size=_copy.chunk_size(limit),
            limit=limit,
            progress=bar.update if watch is None else lambda n: (bar.update(n), watch.add(n)),
            stop=body.switch,
        )
        size = offset + moved
        if body.switch is not None and body.switch.switched and total is not None and size < total:
            _hand_over(job, fd, body, size, total)
    except _copy.WriteFailed as exc:
        raise _partial.write_error(partial, exc.error) from None
    except (_Switched, OmnihubError, Transient):
        raise
    except Exception as exc:  # a read broke off: resume later
        if watch is not None and watch.reason:
            raise TooSlow(watch.reason) from None
        got = _partial.size_of(partial) or 0
        raise Transient(f"{type(exc).__name__} after {got} bytes") from None
    finally:
        os.close(fd)
        bar.close()
    _check_end(job, body, size, limit)
    return hasher, size, offset


def _check_end(job: _Job, body: _Body, size: int, limit: int) -> None:
    """After the copy: the body ended where it said it would, within the size bound."""
    partial, total, offset, watch = job.partial, body.total, body.offset, body.watch
    moved = size - offset
    if watch is not None and watch.reason and size != total:
        raise TooSlow(watch.reason)  # the watchdog ended the body early
    if total is not None and size != total:
        if size < total:
            raise Transient(f"connection closed after {size} of {total} bytes")
        _partial.discard(partial)
        raise DownloadError(
            f"{job.label}: {redact_url(job.url)} grew past the {total} bytes it announced "
            "while it was copied; try again"
        )
    if total is None and job.expected_size is None and moved == limit:
        _partial.discard(partial)
        how = f"decoded from {body.encoding}, " if body.encoding else ""
        raise DownloadError(
            f"{job.label}: {redact_url(job.url)} sent more than {limit - 1 + offset} bytes "
            f"({how}no size announced); stopped at the size bound (OMNIHUB_MAX_SIZE or the "
            "free disk space) and discarded the file"
        )


def _hand_over(job: _Job, fd: int, body: _Body, size: int, total: int) -> None:
    """Stop a slow single stream at ``size``: save it as the first of the segments (the file
    sized to ``total``) and let the next attempt resume them all in parallel; if the record
    cannot be saved, the next attempt resumes the single stream."""
    assert body.record is not None  # a switch is offered only with a validator
    segments = _parallel.split_rest(size, total, job.config.connections)
    done = tuple((seg.start, seg.end, seg.done) for seg in segments)
    if _partial.save(job.partial, attrs.evolve(body.record, total=total, segments=done)):
        try:
            os.ftruncate(fd, total)
        except OSError as exc:
            raise _copy.WriteFailed(exc) from None
        job.switched_from = body.offset
    else:
        job.single_only = True
    raise _Switched


def _local(job: _Job) -> tuple[Any, int, int]:
    """The ``file://`` transport: only a regular file (a FIFO, ``/dev/zero`` or a directory,
    even behind a symlink, is refused without blocking), bounded by its size at open, and
    never readable by more users than the source."""
    from urllib.parse import unquote, urlsplit
    from urllib.request import url2pathname

    url, label = job.url, job.label
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
            f"({_KINDS.get(stat.S_IFMT(st.st_mode), 'not a plain file')}); refusing to copy it"
        )
    os.set_blocking(src_fd, True)
    with os.fdopen(src_fd, "rb", buffering=0) as src:

        def read(size: int) -> bytes:
            try:
                return src.read(size)
            except OSError as exc:
                _partial.discard(job.partial)
                raise DownloadError(f"{label}: cannot read {source}: {exc}") from None

        # with a catalogue size, the copy stops one byte past it and _verify names both sizes
        total = st.st_size if job.expected_size is None else None
        return _receive(job, _Body(read, total, mode=stat.S_IMODE(st.st_mode)))


def _limit(job: _Job, total: int | None, offset: int) -> int:
    """How many bytes the body may bring: one past what it announces, else one past the
    catalogue's size, else past ``OMNIHUB_MAX_SIZE`` or the free space less a 5% (at least
    64 MiB) reserve. An announced length is refused first when it is the wrong size for the
    catalogue (IntegrityError), or more than the disk has: WriteError for the catalogue's own
    size, else that source's failure (DownloadError), so the next one is tried."""
    partial, expected = job.partial, job.expected_size
    free = _free_space(partial.parent)
    if total is None:
        if expected is not None:
            return max(expected - offset, 0) + 1
        cap = job.config.max_size
        if not cap:
            cap = (1 << 62) if free is None else max(free - max(free // 20, 64 << 20), 0)
        return max(cap - offset, 0) + 1
    if expected is not None and total != expected:
        _partial.discard(partial)
        raise IntegrityError(
            f"{job.label}: {redact_url(job.url)} announces {total} bytes, "
            f"expected {expected}; refusing a file of the wrong size"
        )
    if free is not None and total - offset > free:
        if expected is not None:
            raise _partial.write_error(partial, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        _partial.discard(partial)
        raise DownloadError(
            f"{job.label}: {redact_url(job.url)} announces {total} bytes, more than the "
            f"{free} bytes free in {partial.parent}"
        )
    return total - offset + 1


def _free_space(directory: Path) -> int | None:
    import shutil

    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def _attempt(job: _Job) -> tuple[Any, int, int]:
    """One http(s) attempt under its own watch: ``(hasher, size, resumed_from)``."""
    config = job.config
    watch = _watch.Watch(config.min_rate, config.rate_window, config.attempt_deadline)
    try:
        return _http_attempt(job, watch)
    finally:
        watch.close()


def _http_attempt(job: _Job, watch: _watch.Watch) -> tuple[Any, int, int]:
    partial, config = job.partial, job.config
    parallel_ok = config.connections > 1 and hasattr(os, "pwrite") and not job.single_only
    saved = _partial.load(partial, job.url)
    if saved is not None and saved.segments:
        total = saved.total
        if (
            parallel_ok
            and total == _partial.size_of(partial)
            and job.expected_size in (None, total)
        ):
            return _run_parallel(job, saved, watch)
        saved = None
    offset = (_partial.size_of(partial) or 0) if saved is not None else 0
    headers = {"Accept-Encoding": "identity"}
    if saved is not None and saved.validator is not None:
        headers.update({"Range": f"bytes={offset}-", "If-Range": saved.validator})
    response = _http.get(job.url, headers, job.private, config, job.label, timer=watch.after)
    with response:
        status = response.status_code
        encoding = response.headers.get("Content-Encoding", "identity").lower()
        encoded = encoding not in {"identity", ""}
        if status == 206 and encoded:
            raise _Restart(f"HTTP 206 with Content-Encoding {encoding} (a range of encoded bytes)")
        if status == 416 or (status == 206 and saved is None):
            raise _Restart(f"HTTP {status} resuming at byte {offset}")
        if status == 206 and saved is not None:
            start = _http.content_range(response.headers.get("Content-Range"))
            if start is None or start[0] != offset or not saved.matches(response.headers):
                raise _Restart("the file changed on the server since the partial download")
        elif offset:
            logger.info("%s: server sent the whole file instead of a range", job.label)
            offset = 0
        if encoded and encoding not in response.raw.CONTENT_DECODERS:
            raise DownloadError(
                f"{job.label}: {redact_url(job.url)} answered with Content-Encoding "
                f"{encoding!r}, which was not asked for (Accept-Encoding: identity) and "
                "cannot be decoded"
            )
        length = response.headers.get("Content-Length", "")
        # an encoded body's Content-Length counts encoded bytes: no bound on the decoded file
        total = offset + int(length) if length.isdigit() and not encoded else None
        record = None if encoded else _partial.Resume.of(job.url, response.headers, total)
        body = _Body(_reader(response, encoded), total, offset, record, watch=watch)
        if encoded:
            body.encoding = encoding
        elif (
            parallel_ok
            and total is not None
            and total - offset >= max(config.parallel_min_size, 2)
            and response.headers.get("Accept-Ranges", "").lower() == "bytes"
            and record is not None
            and record.validator is not None
        ):
            asked = config.sources.get("connections", "default") != "default"
            body.switch = _parallel.Switch(asked=asked)
        unregister = watch.guard(response.raw.shutdown)
        try:
            return _receive(job, body)
        finally:
            unregister()


def _reader(response: requests.Response, decode: bool) -> Callable[[int], bytes]:
    """Whole chunks of the body (the watchdog, not a short read, sees a drip); an unrequested
    encoding is decoded, at most a chunk per read (a bomb is read in pieces). Undecoded
    reads return what arrived before a connection broke (urllib3 raises on the next), so a
    resume starts at the exact byte."""
    raw = response.raw

    def read(size: int) -> bytes:
        return raw.read(size, decode_content=decode)

    return read


def _store_attempt(job: _Job) -> tuple[Any, int, int]:
    """One read of an object-store object (:mod:`._fsspec`): resumed at the partial's size
    when the record's size and validators (ETag) are the object's; an object replaced since,
    or while it is read, starts over from byte 0."""
    partial = job.partial
    saved = _partial.load(partial, job.url)
    with contextlib.closing(_fsspec.open_object(job.url, job.label)) as opened:
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
        opened.stream.seek(offset)

        def read(size: int) -> bytes:
            try:
                return opened.read(size)
            except _fsspec.Expired as exc:
                raise _Restart(str(exc)) from None

        record = _partial.Resume.of(job.url, opened.validators, total)
        result = _receive(job, _Body(read, total, offset, record))
        if _fsspec.changed(opened):
            raise _Restart(f"{redact_url(job.url)} changed while it was read")
    return result


class _SegmentBody:
    """A segment's response: ``readinto`` fills whole buffers; ``close`` (also called by the
    watch when the attempt is too slow) wakes a blocked read."""

    def __init__(self, response: requests.Response, watch: _watch.Watch) -> None:
        self.response = response
        self.readinto = response.raw.readinto
        self.unregister = watch.guard(self.stop)

    def stop(self) -> None:
        self.response.raw.shutdown()

    def close(self) -> None:
        self.unregister()
        with contextlib.suppress(Exception):  # raises once the connection is back in the pool
            self.stop()
        self.response.close()


def _run_parallel(job: _Job, record: _partial.Resume, watch: _watch.Watch) -> tuple[Any, int, int]:
    """Fetch every saved segment's missing bytes over parallel connections (:mod:`._parallel`);
    the hashing thread reads the bytes already there back in order."""
    partial, config = job.partial, job.config
    segments = [_parallel.Segment(a, b, c) for a, b, c in record.segments]
    total = segments[-1].end
    already = sum(seg.done for seg in segments)

    def open_range(start: int, end: int) -> _SegmentBody:
        headers = {"Accept-Encoding": "identity", "Range": f"bytes={start}-{end}"}
        headers["If-Range"] = record.validator or ""
        response = _http.get(job.url, headers, job.private, config, job.label, timer=watch.after)
        got = _http.content_range(response.headers.get("Content-Range"))
        status = response.status_code
        if status == 206 and got and got[0] == start and record.matches(response.headers):
            return _SegmentBody(response, watch)
        response.close()  # the whole file, a 416 or other validators: one stream from now on
        job.single_only = True
        raise _Restart(f"server refused a byte range (HTTP {status} for bytes {start}-{end})")

    advised = {seg.start: seg.position for seg in segments}

    def save(segs: list[_parallel.Segment]) -> None:
        """Twice a second: keep the progress, and start the writeback of what each segment
        wrote since (as the single stream does every few MiB)."""
        done = tuple((seg.start, seg.end, seg.done) for seg in segs)
        _partial.save(partial, attrs.evolve(record, total=total, segments=done))
        for seg in segs:
            position = seg.position
            _copy.start_writeback(fd, advised[seg.start], position - advised[seg.start])
            advised[seg.start] = position

    try:
        fd = _partial.open_segments(partial, total)
    except OSError as exc:
        raise _partial.write_error(partial, exc) from None
    bar = progress_bar(total, already, job.label, disabled=config.disable_progress)
    logger.info("%s: fetching %d bytes over %d connections", job.label, total, len(segments))
    try:
        hasher = _parallel.run(
            fd,
            segments,
            total,
            open_range=open_range,
            progress=lambda n: (bar.update(n), watch.add(n)),
            save=save,
        )
    except _parallel.SegmentFailed as failed:
        cause = failed.cause
        if failed.writing and isinstance(cause, OSError):
            raise _partial.write_error(partial, cause) from None
        if watch.reason:
            raise TooSlow(watch.reason) from None
        if isinstance(cause, (OmnihubError, Transient)):
            raise cause from None
        done = sum(seg.done for seg in segments)
        raise Transient(f"{failed} after {done} of {total} bytes") from None
    finally:
        os.close(fd)
        bar.close()
    resumed = already if job.switched_from is None else job.switched_from
    job.switched_from = None
    return hasher, total, resumed
