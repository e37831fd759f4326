"""HTTP plumbing shared by single-stream and parallel transfers.

One GET with redirects followed by hand (every hop checked against the transport policy,
private headers kept on the first origin), the transient-failure signal :class:`_Retry`,
``Retry-After`` and backoff arithmetic, and a zero-copy ``readinto`` over a response body.
requests is imported only inside the functions that talk to the network.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from omnihub.errors import DownloadError
from omnihub.urls import check_remote_url, redact_url

if TYPE_CHECKING:
    import requests

    from omnihub.config import Config

__all__ = ["MAX_REDIRECTS"]

logger = logging.getLogger("omnihub")

#: Redirect hops followed before giving up (a loop is reported, not followed forever).
MAX_REDIRECTS = 10

_NOT_FOUND = frozenset({404, 410})

_DENIED = frozenset({401, 403})

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class _Retry(Exception):
    """A transient failure: try again after ``delay`` (None: exponential backoff)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


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
