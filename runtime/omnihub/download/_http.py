"""HTTP for downloads: one session per process, retries, trust, and the redirect policy.

- One :class:`requests.Session` per process and retry setting, shared by every download and
  segment (TLS sessions, connections and the CA bundle loaded once); none across fork().
- urllib3 :class:`~urllib3.util.Retry` retries what fails before a body (connection errors,
  408/429/5xx), honouring ``Retry-After`` up to ``OMNIHUB_RETRY_AFTER_MAX``.
- Trust (:mod:`omnihub.trust`): the first of :data:`CA_VARIABLES` set, else the OS trust
  store plus certifi when ``truststore`` is installed (``OMNIHUB_TRUSTSTORE``), else certifi;
  proxies from the environment.
- A response's headers must be complete within ``OMNIHUB_RATE_WINDOW``, directly or through
  a proxy: the caller's watchdog (``timer``) shuts the socket of a connection that drips them.
- Redirects are followed one hop at a time under the transport policy
  (:func:`omnihub.urls.check_remote_url`); private headers never leave the first origin.
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
    "After",
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

#: ``after(seconds, fn)`` calls ``fn`` later on a watchdog thread and returns its cancel.
After = Callable[[float, Callable[[], object]], Callable[[], None]]
#: Every wait between attempts goes through here (tests replace it to observe backoff).
pause: Callable[[float], None] = time.sleep


class Transient(Exception):
    """A failure worth another attempt (the body broke off, a read timed out)."""


class TooSlow(Transient):
    """A transfer broke the minimum-progress rule or its attempt's deadline."""


class _Headers:
    """One :func:`get`'s header deadline: a connection that drips its status line and headers
    past ``seconds`` has its socket shut from the watchdog thread (``after``)."""

    def __init__(self, after: After, seconds: float) -> None:
        self.after, self.seconds, self.late = after, seconds, False

    def arm(self, sock: socket.socket) -> Callable[[], None]:
        def expire() -> None:
            self.late = True
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

        return self.after(self.seconds, expire)


_current = threading.local()  # .headers: the _Headers of the get() running in this thread


class _HeaderDeadline:
    """Mixed into urllib3's connections: ``getresponse`` (the status line and headers) runs
    under the current :func:`get`'s header deadline."""

    def getresponse(self) -> Any:
        headers: _Headers | None = getattr(_current, "headers", None)
        sock = getattr(self, "sock", None)
        cancel = headers.arm(sock) if headers is not None and sock is not None else None
        try:
            return super().getresponse()  # type: ignore[misc]
        finally:
            if cancel is not None:
                cancel()


def _adapter(retry: Retry, context: ssl.SSLContext | None) -> Any:
    """An HTTPAdapter whose connections, direct or through a proxy, keep the header deadline
    and verify with ``context`` when given."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    http_conn = type("_Conn", (_HeaderDeadline, HTTPConnection), {})
    https_conn = type("_TLSConn", (_HeaderDeadline, HTTPSConnection), {})
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
            manager = super().proxy_manager_for(proxy, **kwargs)
            if not proxy.lower().startswith("socks"):  # SOCKS pools are the SOCKS manager's
                manager.pool_classes_by_scheme = pools
            return manager

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
    key = (chosen, config.retries, config.backoff, config.backoff_max, config.retry_after_max)
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
        adapter = _adapter(retry, chosen.context)
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
    url: str,
    headers: Mapping[str, str],
    private: Mapping[str, str],
    config: Config,
    label: str,
    *,
    timer: After,
) -> requests.Response:
    """GET ``url`` (streamed), following redirects under the transport policy; each
    response's headers must arrive within ``config.rate_window`` (armed through ``timer``).

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
        deadline = _Headers(timer, config.rate_window) if config.rate_window > 0 else None
        _current.headers = deadline
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
            if deadline is not None and deadline.late:
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
        finally:
            _current.headers = None
        status = response.status_code
        if status in _REDIRECTS and "Location" in response.headers:
            response.close()
            current = urljoin(current, response.headers["Location"])
            continue
        if status in (200, 206, 416):
            return response
        response.close()
        raise _status_error(response, redact_url(current), label, config)
    raise DownloadError(
        f"{label}: too many redirects (more than {MAX_REDIRECTS}) fetching {redact_url(url)}; "
        f"last location {redact_url(current)}"
    )


def _status_error(response: requests.Response, shown: str, label: str, config: Config) -> Exception:
    """The error for a final status other than 200/206/416."""
    status = response.status_code
    if status in (404, 410):
        return ModelNotFoundError(f"{label}: {shown} answered HTTP {status} (not found)")
    if status in (401, 403):
        return DownloadError(f"{label}: {shown} answered HTTP {status} (access denied)")
    if status not in _RETRY_STATUS:
        return DownloadError(f"{label}: {shown} answered unexpected HTTP {status}")
    after = response.headers.get("Retry-After", "").strip()
    why = f" (after {config.retries + 1} attempts)"
    if after.isdigit() and float(after) > config.retry_after_max:
        why = (
            f" asking to retry after {after} s, more than "
            f"OMNIHUB_RETRY_AFTER_MAX={config.retry_after_max:.0f}"
        )
    return DownloadError(f"{label}: {shown} answered HTTP {status}{why}")


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
