"""Whom downloads trust, and how a TLS or proxy failure is explained.

Behind a corporate proxy or with a private CA, a download fails until the machine's trust
reaches Python. This module decides, per session, what verifies a server's certificate:

1. A CA bundle named by the environment, first set wins: ``REQUESTS_CA_BUNDLE``,
   ``CURL_CA_BUNDLE``, ``SSL_CERT_FILE`` (PEM files) or ``SSL_CERT_DIR`` (a hashed directory).
   It replaces every other source: the user said exactly what to trust.
2. Else, when the ``truststore`` package is installed (``pip install 'omnihub[truststore]'``)
   and ``OMNIHUB_TRUSTSTORE`` is not off: the operating system's trust store (Keychain on
   macOS, the Windows certificate store, OpenSSL's default paths on Linux) *and* certifi's
   bundle, as pip does since 24.2 -- so a CA installed system-wide is trusted, and a slim
   container without ``ca-certificates`` still trusts the public roots.
3. Else certifi's bundle (requests' default).

``OMNIHUB_TRUSTSTORE``: unset or ``auto`` (use truststore when installed), a true value
(require it: a :class:`~omnihub.errors.ConfigurationError` when it is missing), a false value
(never). Failures name the source that was used and the variables that would fix them; a
proxy failure names the proxy with its credentials removed.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

import attrs

from omnihub.errors import ConfigurationError, DownloadError
from omnihub.urls import redact_url

if TYPE_CHECKING:
    import ssl

__all__ = [
    "CA_VARIABLES",
    "CERTIFI",
    "SYSTEM",
    "TRUSTSTORE_VARIABLE",
    "Trust",
    "current",
    "proxy_error",
    "proxy_for",
    "tls_error",
]

#: Where a private CA bundle is looked for, first set wins (requests, curl and OpenSSL names).
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
#: Turns the operating system's trust store (the ``truststore`` package) on, off or auto.
TRUSTSTORE_VARIABLE = "OMNIHUB_TRUSTSTORE"
#: How the two default sources are named in messages.
CERTIFI = "certifi's CA bundle"
SYSTEM = "the system trust store (truststore) and certifi's CA bundle"

_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"0", "false", "no", "off"})
_AUTO = frozenset({"", "auto"})
_INSTALL = "pip install 'omnihub[truststore]'"


@attrs.frozen
class Trust:
    """What verifies servers' certificates: ``verify`` is requests' argument (a CA path, or
    True for the default), ``context`` an SSL context for the adapter (the system store) or
    None, ``source`` the words messages use for it."""

    verify: str | bool
    context: ssl.SSLContext | None = attrs.field(eq=False)
    source: str


def _truststore_mode() -> str:
    raw = os.environ.get(TRUSTSTORE_VARIABLE, "")
    value = raw.strip().lower()
    if value in _AUTO:
        return "auto"
    if value in _ON:
        return "on"
    if value in _OFF:
        return "off"
    raise ConfigurationError(
        f"{TRUSTSTORE_VARIABLE}={raw!r}: expected auto, a true value (1, true, yes, on: "
        "require the system trust store) or a false value (0, false, no, off: certifi only)"
    )


@functools.lru_cache(maxsize=1)
def _system_context() -> ssl.SSLContext | None:
    """One truststore context per process (the OS store plus certifi), or None when the
    ``truststore`` package cannot be imported."""
    import ssl

    try:
        import truststore
    except ImportError:
        return None
    import certifi

    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(certifi.where())
    return context


def current() -> Trust:
    """The trust the environment asks for now (cheap: the SSL context is built once)."""
    for name in CA_VARIABLES:
        value = os.environ.get(name)
        if value:
            return Trust(value, None, f"{value} ({name})")
    mode = _truststore_mode()
    if mode != "off":
        context = _system_context()
        if context is not None:
            return Trust(True, context, SYSTEM)
        if mode == "on":
            raise ConfigurationError(
                f"{TRUSTSTORE_VARIABLE} asks for the system trust store but the truststore "
                f"package is not installed (needs Python 3.10+): {_INSTALL}, or unset "
                f"{TRUSTSTORE_VARIABLE}"
            )
    return Trust(True, None, CERTIFI)


def _hint(trust: Trust) -> str:
    bundle = (
        "set SSL_CERT_FILE (or REQUESTS_CA_BUNDLE) to a PEM bundle containing that CA, or "
        "SSL_CERT_DIR to a directory of them"
    )
    if trust.source == SYSTEM:
        return (
            f"if a corporate proxy or a private CA signs it, install that CA system-wide or "
            f"{bundle}"
        )
    if trust.source == CERTIFI:
        return (
            f"if a corporate proxy or a private CA signs it, {bundle}; or, to trust the CAs "
            f"installed on this system, {_INSTALL} ({TRUSTSTORE_VARIABLE})"
        )
    return f"is this the right bundle? {bundle}"


def tls_error(url: str, exc: Exception, trust: Trust | None = None) -> DownloadError:
    """The one-line error for a failed TLS handshake with ``url``: what went wrong, which
    trust was used, and the variables that change it."""
    used = trust if trust is not None else current()
    detail = "certificate verify failed" if "CERTIFICATE_VERIFY_FAILED" in str(exc) else exc
    return DownloadError(
        f"TLS error fetching {redact_url(url)} (trusting {used.source}): {detail}; {_hint(used)}"
    )


def _environ_proxy(url: str) -> str | None:
    from requests.utils import get_environ_proxies, select_proxy

    return select_proxy(url, get_environ_proxies(url))


def proxy_for(url: str) -> str | None:
    """The proxy requests uses for ``url`` from the environment (``HTTPS_PROXY``,
    ``ALL_PROXY``, ... less ``NO_PROXY``), with a scheme; None for a direct connection."""
    proxy = _environ_proxy(url)
    return _with_scheme(proxy) if proxy else None


def _with_scheme(proxy: str) -> str:
    return proxy if "://" in proxy else f"http://{proxy}"  # as requests reads it


def _variable_of(url: str, raw: str) -> str:
    """The variable ``raw`` came from (urllib reads the lower-case name first)."""
    scheme = url.partition(":")[0].lower()
    for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY"):
        if os.environ.get(name) == raw:
            return name
    return f"{scheme.upper()}_PROXY"


def _reason(exc: BaseException) -> str:
    """The innermost readable cause of a proxy failure (``Tunnel connection failed: 403
    Forbidden``, ``[Errno 111] Connection refused``)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    last = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        last = cause
        nested = getattr(cause, "original_error", None) or getattr(cause, "reason", None)
        if nested is None and cause.args and isinstance(cause.args[0], BaseException):
            nested = cause.args[0]
        cause = nested if isinstance(nested, BaseException) else None
    text = str(last)
    marker = "Failed to establish a new connection: "
    return text.partition(marker)[2] if marker in text else text


def proxy_error(label: str, url: str, exc: BaseException, attempts: int) -> DownloadError:
    """The one-line error for a proxy that refused or could not be reached: it names the
    proxy (credentials removed) and the variables that choose it."""
    from urllib.parse import unquote

    raw = _environ_proxy(url)
    reason = _reason(exc)
    if isinstance(exc, ValueError):  # requests' InvalidProxyURL
        reason = "the proxy URL is malformed (expected http://[user:password@]host:port)"
    where = "through the proxy"
    if raw is not None:
        proxy = _with_scheme(raw)
        userinfo = proxy.partition("://")[2].rpartition("@")[0]
        for secret in userinfo.partition(":")[::2]:
            for form in {secret, unquote(secret)} if secret else ():
                reason = reason.replace(form, "***")
        where += f" {redact_url(proxy)} ({_variable_of(url, raw)})"
    return DownloadError(
        f"{label}: cannot reach {redact_url(url)} {where}: {reason} (after {attempts} "
        "attempts; NO_PROXY lists hosts to reach directly)"
    )
