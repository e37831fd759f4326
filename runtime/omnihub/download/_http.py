"""HTTP for downloads: one session per process, retries, trust, and the redirect policy.

- One :class:`requests.Session` per process (per retry setting), reused by every download
  and every parallel segment, so TLS sessions, connections and the CA bundle are loaded once.
  A forked child starts with none (sockets must not be shared across processes).
- urllib3 :class:`~urllib3.util.Retry` retries what fails before a body arrives: connection
  errors, read errors before the headers, 408/429/5xx, honouring ``Retry-After`` up to
  ``OMNIHUB_RETRY_AFTER_MAX`` (a longer one is answered at once, as an error).
- Trust (:mod:`omnihub.trust`): ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, ``SSL_CERT_FILE``
  or ``SSL_CERT_DIR`` (first set wins), else the OS trust store plus certifi when
  ``truststore`` is installed (``OMNIHUB_TRUSTSTORE``), else certifi's bundle; proxies from
  ``HTTPS_PROXY``/``NO_PROXY``.
- Liveness: a response's headers must be complete within ``OMNIHUB_RATE_WINDOW`` seconds
  (a watchdog shuts the socket of a connection that drips them), and a body must average
  ``OMNIHUB_MIN_RATE`` bytes/s over every window and end within ``OMNIHUB_ATTEMPT_DEADLINE``
  (:class:`Pace`); a per-read timeout alone never ends a server sending a byte a second.
- Redirects are followed here, one hop at a time, so the transport policy
  (:func:`omnihub.urls.check_remote_url`) applies to every hop and private headers
  (``Authorization``) never leave the first origin.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util.retry import Retry

from omnihub import trust
from omnihub.errors import DownloadError, ModelNotFoundError
from omnihub.urls import check_remote_url, redact_url

if TYPE_CHECKING:
    import ssl

    import requests
    from urllib3.connectionpool import ConnectionPool

    from omnihub.config import Config

__all__ = [
    "CA_VARIABLES",
    "MAX_REDIRECTS",
    "Pace",
    "TooSlow",
    "Transient",
    "backoff",
    "content_range",
    "get",
    "pause",
    "session",
    "trusted",
]

logger = logging.getLogger("omnihub")

#: Redirect hops followed before giving up (a loop is reported, not followed forever).
MAX_REDIRECTS = 10
#: Where a private CA bundle is looked for, first set wins (curl, OpenSSL and requests names).
CA_VARIABLES = trust.CA_VARIABLES
_RETRY_STATUS = frozenset({408, 429, *range(500, 600)})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = "omnihub/0.1"

#: Every wait between attempts goes through here (tests replace it to observe backoff).
pause: Callable[[float], None] = time.sleep


class Transient(Exception):
    """A failure worth another attempt (the body broke off, a read timed out)."""


class TooSlow(Transient):
    """A transfer broke the minimum-progress rule or its attempt's deadline."""


class Pace:
    """The minimum-progress rule and deadline of one attempt, asked after every read.

    Raises :class:`TooSlow` when fewer than ``min_rate * window`` bytes arrived in the last
    full window, or when ``deadline`` seconds passed since the attempt began (0 disables
    either rule). Thread-safe: parallel segments share one pace (their sum is the rate).
    """

    def __init__(self, config: Config) -> None:
        self.min_rate = config.min_rate
        self.window = config.rate_window
        self.deadline = config.attempt_deadline
        self.started = self.window_start = time.monotonic()
        self.in_window = 0
        self._lock = threading.Lock()

    def __call__(self, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            self.in_window += n
            if self.deadline and now - self.started > self.deadline:
                raise TooSlow(
                    f"the attempt took more than OMNIHUB_ATTEMPT_DEADLINE={self.deadline:g} s"
                )
            if self.window and now - self.window_start >= self.window:
                got, self.in_window, self.window_start = self.in_window, 0, now
                if self.min_rate and got < self.min_rate * self.window:
                    raise TooSlow(
                        f"only {got} bytes in {self.window:g} s, less than "
                        f"OMNIHUB_MIN_RATE={self.min_rate} bytes/s (OMNIHUB_RATE_WINDOW)"
                    )

    def wrap(self, readinto: Callable[[memoryview], int | None]) -> Callable[[memoryview], int]:
        """``readinto`` that applies this pace after every read."""

        def paced(view: memoryview) -> int:
            n = readinto(view) or 0
            self(n)
            return n

        return paced


_headers_late = threading.local()


def _expire(sock: Any, conn: Any) -> None:
    """The header watchdog fired: wake the blocked read by shutting the socket."""
    conn.headers_late = True
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _HeaderDeadline:
    """Mixed into urllib3's connections: ``getresponse`` (reading the status line and
    headers) must finish within :attr:`header_deadline` seconds, however slowly they drip."""

    header_deadline = 0.0
    headers_late = False

    def getresponse(self) -> Any:
        sock = getattr(self, "sock", None)
        timer = None
        if self.header_deadline > 0 and sock is not None:
            timer = threading.Timer(self.header_deadline, _expire, (sock, self))
            timer.daemon = True
            timer.start()
        try:
            return super().getresponse()  # type: ignore[misc]
        finally:
            if timer is not None:
                timer.cancel()
                timer.join()  # no thread of ours outlives the request
            if self.headers_late:
                self.headers_late = False
                _headers_late.flag = True


def _paced_adapter(retry: Retry, header_deadline: float, context: ssl.SSLContext | None) -> Any:
    """An HTTPAdapter whose connections enforce ``header_deadline`` and verify with
    ``context`` when given (direct and through a proxy)."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    extra = {"header_deadline": header_deadline}
    http_conn = type("_Conn", (_HeaderDeadline, HTTPConnection), dict(extra))
    https_conn = type("_TLSConn", (_HeaderDeadline, HTTPSConnection), dict(extra))
    pools = {
        "http": type("_Pool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("_TLSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            if context is not None:
                kwargs.setdefault("ssl_context", context)
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            if context is not None:
                kwargs.setdefault("ssl_context", context)
            return super().proxy_manager_for(proxy, **kwargs)

        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
            if context is not None and verify is True:
                conn.ca_certs = None  # in the context already; not reloaded per connection

    return Adapter(max_retries=retry, pool_connections=16, pool_maxsize=32)


def backoff(factor: float, ceiling: float, attempt: int) -> float:
    """Exponential backoff with equal jitter (half fixed, half random) before ``attempt``."""
    if attempt <= 0:
        return 0.0
    top = min(ceiling, factor * 2.0 ** (attempt - 1))
    return top / 2 + random.uniform(0, top / 2)


class _Retry(Retry):
    """urllib3's Retry, waiting through :data:`pause`; a ``Retry-After`` longer than
    ``limit`` ends the retries at once (the response is returned to the caller)."""

    limit = 120.0

    def new(self, **kw: Any) -> _Retry:
        made = super().new(**kw)
        made.limit = self.limit  # new() rebuilds from the constructor's parameters only
        return made

    def increment(self, *args: Any, **kwargs: Any) -> _Retry:
        response = kwargs.get("response")
        if response is not None and self._retry_after(response) > self.limit:
            pool = cast("ConnectionPool", kwargs.get("_pool"))
            raise MaxRetryError(pool, kwargs.get("url") or "", None)
        return super().increment(*args, **kwargs)

    def _retry_after(self, response: Any) -> float:
        try:
            return self.get_retry_after(response) or 0.0
        except InvalidHeader:
            return 0.0

    def get_backoff_time(self) -> float:
        return backoff(self.backoff_factor, self.backoff_max, len(self.history))

    def sleep(self, response: Any = None) -> None:
        delay = (self._retry_after(response) if response is not None else 0.0) or (
            self.get_backoff_time()
        )
        last = self.history[-1] if self.history else None
        if last is not None:
            why = f"HTTP {last.status}" if last.status else type(last.error).__name__
            shown = redact_url(last.url or "")
            logger.warning("%s from %s; retrying in %.2f s", why, shown, delay)
        pause(delay)


_sessions: dict[tuple[object, ...], requests.Session] = {}
_sessions_lock = threading.Lock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_sessions.clear)


def session(config: Config) -> requests.Session:
    """This process's session for ``config``'s retry settings (created once, thread-safe)."""
    import requests

    chosen = trust.current()
    key = (
        chosen,
        config.retries,
        config.backoff,
        config.backoff_max,
        config.retry_after_max,
        config.rate_window,
    )
    with _sessions_lock:
        found = _sessions.get(key)
        if found is not None:
            return found
        retry = _Retry(
            total=config.retries,
            other=0,
            redirect=0,
            allowed_methods={"GET"},
            status_forcelist=_RETRY_STATUS,
            backoff_factor=config.backoff,
            backoff_max=config.backoff_max,
            raise_on_status=False,
            raise_on_redirect=False,
        )
        retry.limit = config.retry_after_max
        adapter = _paced_adapter(retry, config.rate_window, chosen.context)
        made = requests.Session()
        made.headers["User-Agent"] = _USER_AGENT
        made.mount("https://", adapter)
        made.mount("http://", adapter)
        _sessions[key] = made
        return made


def trusted() -> str | bool:
    """The CA bundle (file or directory) the environment names, or True for the default."""
    return trust.current().verify


def _tls_error(url: str, exc: Exception) -> DownloadError:
    return trust.tls_error(url, exc)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    """Scheme, host and port as urllib3 -- the client that connects -- parses them (private
    headers follow this origin, never another parser's reading of the URL)."""
    from urllib3.util import parse_url

    parts = parse_url(url)
    host = parts.host.lower() if parts.host else None
    return (parts.scheme or "").lower(), host, parts.port


def get(
    url: str, headers: Mapping[str, str], private: Mapping[str, str], config: Config, label: str
) -> requests.Response:
    """GET ``url`` (streamed), following redirects under the transport policy.

    Returns a 200/206 response. Raises :class:`~omnihub.errors.ModelNotFoundError` (404/410),
    :class:`~omnihub.errors.DownloadError` (401/403, TLS, other statuses, retries exhausted)
    or :class:`Transient` (a read failed before the headers).
    """
    from urllib.parse import urljoin

    import requests

    http = session(config)
    current = url
    origin = _origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        check_remote_url(current, allow_http=config.allow_http, allow_file=False)
        sent = {**headers, **private} if _origin(current) == origin else dict(headers)
        _headers_late.flag = False
        try:
            response = http.get(
                current,
                headers=sent,
                stream=True,
                allow_redirects=False,
                verify=trusted(),
                timeout=(config.connect_timeout, config.read_timeout),
            )
        except requests.exceptions.SSLError as exc:
            raise _tls_error(current, exc) from None
        except (requests.exceptions.ProxyError, requests.exceptions.InvalidProxyURL) as exc:
            raise trust.proxy_error(label, current, exc, config.retries + 1) from None
        except requests.ConnectionError as exc:
            if getattr(_headers_late, "flag", False):
                raise DownloadError(
                    f"{label}: {redact_url(current)} did not finish sending its response "
                    f"headers within OMNIHUB_RATE_WINDOW={config.rate_window:g} s "
                    f"(after {config.retries + 1} attempts)"
                ) from None
            raise DownloadError(
                f"{label}: cannot reach {redact_url(current)}: {type(exc).__name__} "
                f"(after {config.retries + 1} attempts)"
            ) from None
        except requests.Timeout as exc:
            raise Transient(f"{type(exc).__name__} fetching {redact_url(current)}") from None
        status = response.status_code
        if status in _REDIRECTS and "Location" in response.headers:
            response.close()
            current = urljoin(current, response.headers["Location"])
            continue
        if status in (200, 206, 416):
            return response
        response.close()
        shown = redact_url(current)
        if status in (404, 410):
            raise ModelNotFoundError(f"{label}: {shown} answered HTTP {status} (not found)")
        if status in (401, 403):
            raise DownloadError(f"{label}: {shown} answered HTTP {status} (access denied)")
        if status in _RETRY_STATUS:
            after = response.headers.get("Retry-After", "").strip()
            why = f" (after {config.retries + 1} attempts)"
            if after.isdigit() and float(after) > config.retry_after_max:
                why = (
                    f" asking to retry after {after} s, more than "
                    f"OMNIHUB_RETRY_AFTER_MAX={config.retry_after_max:.0f}"
                )
            raise DownloadError(f"{label}: {shown} answered HTTP {status}{why}")
        raise DownloadError(f"{label}: {shown} answered unexpected HTTP {status}")
    raise DownloadError(
        f"{label}: too many redirects (more than {MAX_REDIRECTS}) fetching {redact_url(url)}; "
        f"last location {redact_url(current)}"
    )


def content_range(value: str | None) -> tuple[int, int | None] | None:
    """``(start, total)`` of ``bytes start-end/total``; None when malformed."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, total = value[6:].partition("/")
    start, _, _end = span.partition("-")
    try:
        return int(start), (None if total.strip() == "*" else int(total))
    except ValueError:
        return None
