"""Parallel ranged HTTP transfers: when to switch, how to resume, the per-segment requests.

A large download from a server that accepts ranges starts as one stream; if it turns out
slow (:class:`_Switch`), it continues as segment 0 while the rest is fetched over
``OMNIHUB_CONNECTIONS`` ranged requests by :mod:`omnihub._parallel`. Saved segments in
``<file>.incomplete.json`` let a later attempt fetch only what is missing.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnihub._http import _DENIED, _NOT_FOUND, _body_reader, _open, _parse_content_range, _Retry
from omnihub._parallel import ParallelFailed, Segment, plan
from omnihub._parallel import run as run_segments
from omnihub._partial import _discard, _regular_size, _write_error, meta_path
from omnihub._stream import Flusher
from omnihub.cache import atomic_write_text
from omnihub.errors import DownloadError, ModelNotFoundError
from omnihub.progress import progress_bar
from omnihub.urls import redact_url

if TYPE_CHECKING:
    import requests

    from omnihub.config import Config

__all__ = ["PARALLEL_BELOW", "PROBE_SECONDS"]

logger = logging.getLogger("omnihub")


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
    except (OSError, ValueError):
        return None
    size = _regular_size(partial)
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


#: A stream gets this long to show its speed before a switch to parallel connections is
#: considered; below ``PARALLEL_BELOW`` bytes/s the rest is fetched in parallel.
PROBE_SECONDS = 0.05

PARALLEL_BELOW = 100 << 20


class _Switch:
    """Decides, once, whether a single stream is slow enough to go parallel."""

    def __init__(self, config: Config) -> None:
        self.connections = config.connections
        self.started = time.monotonic()
        self.decided = False
        self.switched = False

    def decide(self, pumped: int) -> bool:
        if self.decided:
            return False
        elapsed = time.monotonic() - self.started
        if elapsed < PROBE_SECONDS:
            return False
        self.decided = True
        self.switched = pumped < PARALLEL_BELOW * elapsed
        return self.switched


def _split_rest(position: int, total: int, connections: int) -> list[Segment]:
    """Segments for a stream at ``position``: it keeps the first share of the rest."""
    rest = plan(total - position, connections)
    first = Segment(0, position + rest[0].end, position)
    return [first, *(Segment(position + s.start, position + s.end) for s in rest[1:])]


class _RangeRefused(Exception):
    """The server answered a segment's range request with the whole file (or a 416)."""


class _Body:
    """A segment body: reads straight from the response, closes response and session."""

    def __init__(self, response: requests.Response, session: requests.Session | None) -> None:
        self.response = response
        self.session = session
        self.readinto = _body_reader(response, False)

    def close(self) -> None:
        # shutdown() wakes a reader blocked in recv in another thread (close alone may not),
        # so an aborted parallel transfer never waits out a read timeout.
        with contextlib.suppress(Exception):
            self.response.raw.shutdown()
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
    hasher: Any = None,
    hashed: int = 0,
    resumed: int | None = None,
) -> tuple[Any, int, int]:
    """Fetch the missing bytes of every segment over parallel connections (see _parallel).

    ``first`` (a response positioned at ``segments[0].position``) continues as segment 0;
    ``hasher`` already holds the first ``hashed`` bytes when a slow stream switched over.
    """
    import http.client

    import requests
    import urllib3

    validator = _strong_validator(meta) or ""
    already = sum(seg.done for seg in segments)
    if resumed is None:
        resumed = already

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
        flusher.kick()  # write back what the segments wrote so far, in the background
        data = {**meta, "segments": [[seg.start, seg.end, seg.done] for seg in segs]}
        with contextlib.suppress(OSError):
            atomic_write_text(meta_path(partial), json.dumps(data))

    extend = first is not None  # a slow stream switched over: grow its partial to full size
    try:
        fd = os.open(
            partial,
            os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0),
            0o644,
        )
    except OSError as exc:
        if first is not None:
            first.close()
        raise _write_error(partial, exc) from None
    flusher = Flusher(fd)
    bar = progress_bar(total, already, label, disabled=config.disable_progress)
    bar_lock = threading.Lock()

    def progress(n: int) -> None:
        with bar_lock:
            bar.update(n)

    try:
        if extend:
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
            already,
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
                hasher=hasher,
                hashed=hashed,
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
            flusher.finish()
        except OSError as exc:
            raise _write_error(partial, exc) from None
        return hasher, total, resumed
    finally:
        flusher.close()
        os.close(fd)
        bar.close()
