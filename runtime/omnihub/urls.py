"""Pure functions that build and parse model URLs and cache paths, and the transport policy.

Nothing here touches the network or the filesystem. Names coming from catalogues and specs
are validated before they become URLs or paths: a framework or file name can never contain
``..``, an absolute or drive-relative path, a backslash, NUL or another control character,
or an empty segment, so a cache path always stays inside ``OMNIHUB_HOME`` under both POSIX
and Windows path semantics. URL segments are percent-encoded (UTF-8), so ``parse(build(x))``
returns ``x`` exactly for any valid name, including ones with spaces, ``%`` or ``#``.
"""

from __future__ import annotations

import functools
from pathlib import PurePath
from urllib.parse import quote, unquote, urlsplit

from omnihub.errors import ConfigurationError
from omnihub.layout import SIDECARS

__all__ = [
    "RESERVED_SUFFIXES",
    "ambiguity",
    "build_hf_url",
    "build_model_url",
    "cache_path",
    "check_base_url",
    "check_remote_url",
    "is_loopback",
    "is_object_store",
    "normalize_base_url",
    "parse_hf_url",
    "parse_model_url",
    "redact_url",
    "split_name",
]

#: Suffixes of the files omnihub keeps beside a cached model; model names may not end so.
RESERVED_SUFFIXES = SIDECARS

_MAX_SEGMENT_BYTES = 200  # leaves room for the sidecar suffixes under NAME_MAX (255)
_FORBIDDEN = frozenset("\\:\x7f") | frozenset(chr(c) for c in range(32))
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
# Characters parsers disagree on (WHATWG and urllib3 end the host at ``\\``, urlsplit does
# not; controls and whitespace are stripped by some, kept by others): refused in any URL.
_AMBIGUOUS = frozenset("\\\x7f") | frozenset(chr(c) for c in range(33))
# What an authority (``user:password@host:port``) may hold per RFC 3986, besides
# letters and digits: anything else (non-ASCII, ``<>{}|^`` ...) is read differently somewhere.
_AUTHORITY_EXTRA = frozenset("-._~!$&'()*+,;=:@[]%")
#: fsspec protocols without encryption: like plain http, loopback or OMNIHUB_ALLOW_HTTP only.
_PLAIN_STORES = frozenset({"ftp", "webhdfs", "smb"})

# Not ``from typing import ...`` at run time: every model call resolves a cache path, and
# importing typing costs several ms per process.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    P = TypeVar("P", bound=PurePath)


def _check_segment(segment: str, what: str, whole: str) -> None:
    if not segment:
        raise ConfigurationError(f"{what} {whole!r}: empty path segment")
    if segment.strip(". ") == "":
        raise ConfigurationError(f"{what} {whole!r}: segment {segment!r} is not a plain name")
    bad = _FORBIDDEN.intersection(segment)
    if bad:
        shown = ", ".join(repr(c) for c in sorted(bad))
        raise ConfigurationError(f"{what} {whole!r}: forbidden character(s) {shown}")
    try:
        size = len(segment.encode("utf-8"))
    except UnicodeEncodeError:
        raise ConfigurationError(f"{what} {whole!r}: not valid unicode text") from None
    if size > _MAX_SEGMENT_BYTES:
        raise ConfigurationError(
            f"{what} {whole!r}: segment is {size} bytes, at most {_MAX_SEGMENT_BYTES} allowed"
        )


def split_name(name: str, what: str = "file name", *, single: bool = False) -> tuple[str, ...]:
    """Validate a relative ``/``-separated name and return its segments.

    ``single=True`` requires exactly one segment (framework names). Raises
    :class:`~omnihub.errors.ConfigurationError` naming the offending value.
    """
    if not isinstance(name, str):
        raise ConfigurationError(f"{what} {name!r}: expected a string")
    if name.startswith("/"):
        raise ConfigurationError(f"{what} {name!r}: absolute names are not allowed")
    parts = tuple(name.split("/"))
    if single and len(parts) != 1:
        raise ConfigurationError(f"{what} {name!r}: must not contain '/'")
    for part in parts:
        _check_segment(part, what, name)
    if parts[-1].endswith(RESERVED_SUFFIXES):
        raise ConfigurationError(
            f"{what} {name!r}: names ending in {', '.join(RESERVED_SUFFIXES)} are reserved"
        )
    return parts


def cache_path(home: P, framework: str, file: str) -> P:
    """``<home>/<framework>/<file>`` (DL4J's layout), with both names validated.

    Generic over the path flavour so tests can check POSIX and Windows semantics alike.
    """
    (fw,) = split_name(str(framework), "framework", single=True)
    return home.joinpath(fw, *split_name(file))


def _quote_all(parts: tuple[str, ...]) -> str:
    return "/".join(quote(p, safe="") for p in parts)


def _unquote(segment: str, url: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise ConfigurationError(f"URL {redact_url(url)!r}: invalid percent-encoding") from None


def normalize_base_url(base: str) -> str:
    """Strip trailing slashes; reject bases without a scheme or host, or with a query,
    an invalid port or a character that URL parsers read differently (:func:`ambiguity`)."""
    problem = ambiguity(base)
    if problem:
        raise ConfigurationError(f"base URL {redact_url(base)!r}: {problem}")
    parts = urlsplit(base)
    store = is_object_store(base)
    if parts.scheme not in {"http", "https", "file"} and not store:
        raise ConfigurationError(
            f"base URL {redact_url(base)!r}: scheme must be https, http, file or an fsspec "
            "protocol (s3, gs, az, ...)"
        )
    if store and not parts.netloc:
        raise ConfigurationError(f"base URL {redact_url(base)!r}: no bucket or host")
    if parts.scheme != "file" and not store and not parts.hostname:
        raise ConfigurationError(f"base URL {redact_url(base)!r}: no host")
    if parts.query or parts.fragment or base.endswith(("?", "#")):
        raise ConfigurationError(
            f"base URL {redact_url(base)!r}: must not have a query or fragment"
        )
    return base.rstrip("/")


def build_model_url(base: str, framework: str, file: str) -> str:
    """``<base>/<framework>/<file>``, each segment percent-encoded."""
    fw = split_name(str(framework), "framework", single=True)
    return f"{normalize_base_url(base)}/{_quote_all(fw)}/{_quote_all(split_name(file))}"


def parse_model_url(url: str, base: str) -> tuple[str, str]:
    """Inverse of :func:`build_model_url`: ``(framework, file)`` of a URL under ``base``."""
    prefix = normalize_base_url(base) + "/"
    if not url.startswith(prefix):
        raise ConfigurationError(f"URL {redact_url(url)!r} is not under {redact_url(base)!r}")
    parts = [_unquote(p, url) for p in url[len(prefix) :].split("/")]
    if len(parts) < 2:
        raise ConfigurationError(f"URL {redact_url(url)!r}: expected <framework>/<file>")
    framework, file = parts[0], "/".join(parts[1:])
    split_name(framework, "framework", single=True)
    split_name(file)
    return framework, file


def build_hf_url(endpoint: str, repo_id: str, revision: str, file: str) -> str:
    """``<endpoint>/<repo id>/resolve/<revision>/<file>`` as the Hugging Face Hub serves files.

    The revision is one encoded segment (``refs/pr/1`` becomes ``refs%2Fpr%2F1``), as the
    Hub's own client does.
    """
    repo = split_name(repo_id, "Hugging Face repository id")
    if len(repo) > 2:
        raise ConfigurationError(f"Hugging Face repository id {repo_id!r}: expected 'owner/name'")
    if not revision:
        raise ConfigurationError("Hugging Face revision: empty")
    rev = quote(revision, safe="")
    path = _quote_all(split_name(file))
    return f"{normalize_base_url(endpoint)}/{_quote_all(repo)}/resolve/{rev}/{path}"


def parse_hf_url(url: str, endpoint: str) -> tuple[str, str, str]:
    """Inverse of :func:`build_hf_url`: ``(repo_id, revision, file)``."""
    prefix = normalize_base_url(endpoint) + "/"
    if not url.startswith(prefix):
        raise ConfigurationError(f"URL {redact_url(url)!r} is not under {redact_url(endpoint)!r}")
    parts = url[len(prefix) :].split("/")
    for n in (1, 2):
        if len(parts) > n + 2 and parts[n] == "resolve":
            repo = "/".join(_unquote(p, url) for p in parts[:n])
            revision = _unquote(parts[n + 1], url)
            file = "/".join(_unquote(p, url) for p in parts[n + 2 :])
            split_name(file)
            return repo, revision, file
    raise ConfigurationError(f"URL {redact_url(url)!r}: expected <repo>/resolve/<revision>/<file>")


def is_loopback(host: str | None) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (the only hosts plain http may reach)."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host in _LOOPBACK_NAMES:
        return True
    import ipaddress

    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    # IPv4-mapped IPv6 (``::ffff:127.0.0.1``) counts as remote on every Python: 3.13 started
    # calling it loopback, and the rule must not depend on the interpreter's version.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return False
    return address.is_loopback


def _authority(url: str) -> str | None:
    """The authority as urllib3 (and a browser) delimits it: up to ``/``, ``\\``, ``?``
    or ``#``; None without ``//``."""
    _, sep, rest = url.partition("://")
    if not sep:
        return None
    end = next((i for i, c in enumerate(rest) if c in "/\\?#"), len(rest))
    return rest[:end]


def _port_of(hostport: str) -> str:
    """The text after the port colon of ``host[:port]`` (``[v6]:port`` aware), or ``""``."""
    if hostport.startswith("["):
        return hostport.partition("]")[2].removeprefix(":")
    return hostport.rpartition(":")[2] if ":" in hostport else ""


def ambiguity(url: str) -> str | None:
    """Why ``url`` could be read as two different hosts or ports, or None if it cannot.

    Refused: a backslash, a control character or whitespace anywhere; an authority
    character outside RFC 3986's set (non-ASCII hosts must be given in punycode); an invalid
    port. The message never quotes the URL (the caller shows it redacted).
    """
    bad = _AMBIGUOUS.intersection(url)
    if bad or any(c.isspace() for c in url):
        shown = ", ".join(repr(c) for c in sorted(bad)) or "whitespace"
        return (
            f"contains {shown}, which URL parsers read differently "
            "(percent-encode it, e.g. %5C for a backslash)"
        )
    authority = _authority(url)
    if authority is None:
        return None
    odd = {c for c in authority if not (c.isascii() and c.isalnum()) and c not in _AUTHORITY_EXTRA}
    if odd:
        shown = ", ".join(repr(c) for c in sorted(odd))
        return f"character(s) {shown} not allowed in the host part (use punycode for IDN hosts)"
    port = _port_of(authority.rpartition("@")[2])
    if port and not port.isdigit() and "@" in url[url.index(authority) + len(authority) :]:
        return "the user name or password holds an unencoded '/', '?' or '#' (percent-encode it)"
    if port and not (port.isdigit() and int(port) <= 65535):
        return "invalid port (expected a number 0-65535)"
    return None


def _client_host(url: str) -> tuple[str | None, int | None]:
    """Host and port as the HTTP client (urllib3) will connect; the policy is decided on these."""
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    try:
        parsed = parse_url(url)
    except LocationParseError:
        return None, None
    return parsed.host, parsed.port


def _same_host(url: str, hostname: str, port: int | None) -> bool:
    host, client_port = _client_host(url)
    return host is not None and host.strip("[]").lower() == hostname and client_port == port


def check_remote_url(url: str, *, allow_http: bool, allow_file: bool, what: str = "URL") -> str:
    """Apply the transport policy to a URL about to be fetched; return it unchanged.

    HTTPS always; plain http only to a loopback host or with ``allow_http``
    (``OMNIHUB_ALLOW_HTTP=1``); ``file://`` and object-store URLs (``s3://``, ...) only when
    ``allow_file`` (a configured mirror, never a catalogue URL or a redirect). A URL that
    parsers could read as different hosts (:func:`ambiguity`) is refused first; the loopback
    decision is taken on the host urllib3 will actually connect to, and must agree with
    :func:`urllib.parse.urlsplit`'s.
    """
    return _check_remote_url(url, allow_http, allow_file, what)


@functools.lru_cache(maxsize=1024)  # pure, and one fetch checks the same URL three times
def _check_remote_url(url: str, allow_http: bool, allow_file: bool, what: str) -> str:
    problem = ambiguity(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not problem and scheme in {"http", "https"} and parts.hostname:
        problem = "" if _same_host(url, parts.hostname, parts.port) else "the host is ambiguous"
    if problem:
        host, _ = _client_host(url)
        if host is not None and host.strip("[]").lower() != (parts.hostname or ""):
            problem += f" (the HTTP client would connect to {host!r}, not {parts.hostname!r})"
        raise ConfigurationError(f"{what} {redact_url(url)!r}: {problem}")
    if scheme == "https" and parts.hostname:
        return url
    if scheme == "http" and parts.hostname:
        if allow_http or is_loopback(parts.hostname):
            return url
        raise ConfigurationError(
            f"{what} {redact_url(url)!r}: plain http is allowed only to loopback hosts; "
            "use https or set OMNIHUB_ALLOW_HTTP=1"
        )
    if scheme == "file":
        if allow_file:
            return url
        raise ConfigurationError(
            f"{what} {redact_url(url)!r}: file:// URLs are allowed only as configured mirrors"
        )
    if is_object_store(url):
        plain = scheme in _PLAIN_STORES and not (allow_http or is_loopback(parts.hostname))
        if allow_file and not plain:
            return url
        if plain:
            raise ConfigurationError(
                f"{what} {redact_url(url)!r}: {scheme}:// is unencrypted; allowed only to "
                "loopback hosts or with OMNIHUB_ALLOW_HTTP=1"
            )
        raise ConfigurationError(
            f"{what} {redact_url(url)!r}: object-store URLs ({scheme}://) are allowed only as "
            "configured mirrors"
        )
    raise ConfigurationError(f"{what} {redact_url(url)!r}: expected an https:// URL")


def is_object_store(url: str) -> bool:
    """True for ``<scheme>://...`` URLs read through fsspec (``s3://``, ``gs://``, ``az://``,
    ...): any scheme but http, https and file. Whether the scheme's implementation is
    installed is known only when it is used (:mod:`omnihub.object_store`)."""
    scheme, sep, _ = url.partition("://")
    return (
        bool(sep)
        and len(scheme) > 1  # not a Windows drive letter
        and scheme.lower() not in {"http", "https", "file"}
        and scheme[0].isalpha()
        and all(c.isalnum() or c in "+.-" for c in scheme)
    )


def check_base_url(base: str, *, allow_http: bool) -> str:
    """Normalize a configured mirror or endpoint and apply the transport policy to it."""
    normalized = normalize_base_url(base)
    check_remote_url(normalized, allow_http=allow_http, allow_file=True, what="base URL")
    return normalized


def redact_url(url: str) -> str:
    """The URL with any user:password removed and the query hidden, safe for messages.

    The host is the one the HTTP client connects to (the authority ends at ``/``, ``\\``,
    ``?`` or ``#``). A password holding an unencoded ``/`` or ``#`` cuts the authority short
    (``https://user:pa/ss@host``): an authority that is not ``host[:port]`` is taken as the
    start of credentials, and everything up to the URL's last ``@`` is hidden.
    """
    authority = _authority(url)
    if authority is None:
        return url.partition("?")[0] + ("?<redacted>" if "?" in url else "")
    head, _, rest = url.partition("://")
    rest = rest[len(authority) :]
    port = _port_of(authority.rpartition("@")[2])
    if "@" in authority:
        authority = authority.rpartition("@")[2]
    elif port and not port.isdigit():
        at = rest.rfind("@")
        if at < 0:
            return f"{head}://<credentials hidden>"
        rest = rest[at + 1 :]
        authority = _authority("x://" + rest) or ""
        rest = rest[len(authority) :]
    path, mark, tail = rest.partition("?")
    if mark:
        fragment = tail.partition("#")[1:]
        path += "?<redacted>" + "".join(fragment)
    return f"{head}://{authority}{path}"
