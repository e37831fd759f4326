"""Resolved runtime configuration: where the cache lives, where models come from, how to fetch.

Every setting is resolved with the same precedence -- explicit argument, then environment
variable, then built-in default -- and :func:`resolve` remembers where each value came from
so that ``omnihub doctor`` (:func:`describe`) can show it. Resolution reads only
``os.environ``: it is cheap enough to run on every call, so a changed environment is
honoured without any global state.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from omnihub._enums import DEFAULT_OMNIHUB_URL
from omnihub.errors import ConfigurationError
from omnihub.urls import redact_url

__all__ = [
    "DEFAULT_HF_ENDPOINT",
    "ENV",
    "Config",
    "Setting",
    "describe",
    "resolve",
    "resolve_home",
]

#: The Hugging Face Hub endpoint used when ``HF_ENDPOINT`` is unset.
DEFAULT_HF_ENDPOINT = "https://huggingface.co"

#: Config field -> the environment variable(s) it is read from, first match wins.
ENV: Mapping[str, tuple[str, ...]] = {
    "home": ("OMNIHUB_HOME",),
    "urls": ("OMNIHUB_URL",),
    "offline": ("OMNIHUB_OFFLINE",),
    "disable_progress": ("OMNIHUB_DISABLE_PROGRESS",),
    "hf_endpoint": ("HF_ENDPOINT",),
    "hf_token": ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
    "allow_http": ("OMNIHUB_ALLOW_HTTP",),
    "connect_timeout": ("OMNIHUB_CONNECT_TIMEOUT",),
    "read_timeout": ("OMNIHUB_READ_TIMEOUT",),
    "retries": ("OMNIHUB_RETRIES",),
    "backoff": ("OMNIHUB_BACKOFF",),
    "backoff_max": ("OMNIHUB_BACKOFF_MAX",),
    "retry_after_max": ("OMNIHUB_RETRY_AFTER_MAX",),
    "connections": ("OMNIHUB_CONNECTIONS",),
    "parallel_min_size": ("OMNIHUB_PARALLEL_MIN_SIZE",),
    # transport liveness and size bounds (issue 15 items 6, 8): see _TRANSPORT_KINDS
    "min_rate": ("OMNIHUB_MIN_RATE",),
    "rate_window": ("OMNIHUB_RATE_WINDOW",),
    "attempt_deadline": ("OMNIHUB_ATTEMPT_DEADLINE",),
    "max_size": ("OMNIHUB_MAX_SIZE",),
}
#: Transport settings -> their number type (all non-negative; 0 turns the rule off).
_TRANSPORT_KINDS: Mapping[str, type[int] | type[float]] = {
    "min_rate": int,  # bytes/s a transfer must average over each rate_window
    "rate_window": float,  # seconds; also the deadline for a response's headers
    "attempt_deadline": float,  # seconds one attempt may take in total
    "max_size": int,  # bytes an unsized body may reach (0: the free disk space)
}

#: Inclusive bounds of numeric settings (seconds, counts, bytes): beyond them a value is a
#: mistake (``OMNIHUB_READ_TIMEOUT=1e999``) that would overflow a socket or sleep call.
_LONGEST = 1e7  # seconds, about 16 weeks; far below what sleep() and sockets accept
_RANGES: Mapping[str, tuple[float, float, str]] = {
    "connect_timeout": (0, _LONGEST, "seconds"),
    "read_timeout": (0, _LONGEST, "seconds"),
    "backoff": (0, _LONGEST, "seconds"),
    "backoff_max": (0, _LONGEST, "seconds"),
    "retry_after_max": (0, _LONGEST, "seconds"),
    "retries": (0, 1_000_000, "retries"),
    "connections": (1, 256, "connections"),
    "parallel_min_size": (0, 2**63 - 1, "bytes"),
    "min_rate": (0, 2**63 - 1, "bytes per second"),
    "rate_window": (0, _LONGEST, "seconds"),
    "attempt_deadline": (0, _LONGEST, "seconds"),
    "max_size": (0, 2**63 - 1, "bytes"),
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


@attrs.frozen
class Setting:
    """One resolved setting, for display: its value (secrets masked) and its origin."""

    name: str
    value: str
    source: str  # "argument", "environment (VAR)" or "default"


def _redacted_urls(urls: tuple[str, ...]) -> str:
    return repr(tuple(redact_url(u) for u in urls))


def _sources(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


@attrs.frozen(kw_only=True)
class Config:
    """The fully resolved configuration one download or cache lookup runs with.

    ``urls`` lists the omnihub zoo mirrors, tried in order (``OMNIHUB_URL`` may name several,
    separated by whitespace or commas). Timeouts and backoff are in seconds; ``retries`` is
    the number of extra attempts after the first on a transient failure. Files of at least
    ``parallel_min_size`` bytes from servers that accept ranges may be fetched over
    ``connections`` connections at once (1: always one stream).
    ``sources`` says where each setting came from (for ``omnihub doctor``); it takes no part
    in equality. The repr hides the Hugging Face token and any credentials in the URLs.
    """

    home: Path
    urls: tuple[str, ...] = attrs.field(repr=_redacted_urls)
    offline: bool = False
    disable_progress: bool = False
    hf_endpoint: str = DEFAULT_HF_ENDPOINT
    hf_token: str | None = attrs.field(default=None, repr=False)
    allow_http: bool = False
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 5
    backoff: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 120.0
    connections: int = 8
    parallel_min_size: int = 64 << 20
    min_rate: int = 1024
    rate_window: float = 30.0
    attempt_deadline: float = 86400.0
    max_size: int = 0
    sources: Mapping[str, str] = attrs.field(factory=dict, converter=_sources, eq=False, repr=False)


def _default_home() -> Path:
    return Path.home() / ".omnihub"


#: Built-in defaults, already in their field's type (constants: not parsed on every call).
_DEFAULTS: dict[str, object] = {
    "urls": (DEFAULT_OMNIHUB_URL,),
    "offline": False,
    "disable_progress": False,
    "hf_endpoint": DEFAULT_HF_ENDPOINT,
    "hf_token": None,
    "allow_http": False,
    "connect_timeout": 10.0,
    "read_timeout": 60.0,
    "retries": 5,
    "backoff": 0.5,
    "backoff_max": 30.0,
    "retry_after_max": 120.0,
    "connections": 8,
    "parallel_min_size": 64 << 20,
    **{"min_rate": 1024, "rate_window": 30.0, "attempt_deadline": 86400.0, "max_size": 0},
}


def _parse_bool(name: str, text: str) -> bool:
    folded = text.strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ConfigurationError(f"{name}={text!r}: expected one of 1/0, true/false, yes/no, on/off")


def _parse_number(name: str, text: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(text.strip())
    except ValueError:
        raise ConfigurationError(
            f"{name}={text!r}: expected a non-negative {kind.__name__}"
        ) from None
    if not (value >= 0 and math.isfinite(value)):  # negative, NaN or infinite
        raise ConfigurationError(f"{name}={text!r}: expected a finite non-negative number")
    return value


def _check_range(field: str, name: str, value: object) -> None:
    """Raise :class:`ConfigurationError` if a numeric setting lies outside :data:`_RANGES`."""
    bounds = _RANGES.get(field)
    if bounds is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high, unit = bounds
    if not low <= value <= high:  # False for NaN too
        raise ConfigurationError(
            f"{name}={value!r}: expected {unit} from {low:g} to {high:g}"
            if unit != "bytes"
            else f"{name}={value!r}: expected a number of bytes from 0 to 2**63-1"
        )


def _masked(url: str) -> str:
    """``url`` for an error message about a URL that may not parse: everything between the
    scheme and the last ``@`` (user, password) hidden."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def _check_url(name: str, url: str) -> None:
    """A base URL the HTTP client can use: it parses, and any port is a number 1-65535."""
    from urllib.parse import urlsplit

    accepted = "expected a base URL like https://host[:port]/path, port 1-65535"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        why = "a bad port" if "port" in str(exc).lower() else "a malformed host (IPv6 brackets?)"
        raise ConfigurationError(f"{name}={_masked(url)!r}: {why}; {accepted}") from None
    if port == 0:
        raise ConfigurationError(f"{name}={_masked(url)!r}: port 0; {accepted}")
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise ConfigurationError(f"{name}={_masked(url)!r}: no host; {accepted}")


def _split_urls(name: str, text: str) -> tuple[str, ...]:
    urls = tuple(u for u in text.replace(",", " ").split() if u)
    if not urls:
        raise ConfigurationError(f"{name}={text!r}: expected at least one base URL")
    for url in urls:
        _check_url(name, url)
    return urls


def _convert_object(field: str, name: str, raw: object) -> object:
    """A non-string argument (URL list, path-like, number) as the field's type."""
    if field == "urls" and isinstance(raw, (list, tuple)):
        for url in raw:
            _check_url(name, str(url))
        return tuple(str(u) for u in raw)
    if field == "home" and isinstance(raw, os.PathLike):
        return _expand(name, Path(raw))
    return raw


def _expand(name: str, path: Path) -> Path:
    """``~`` and ``~user`` expanded; a user that does not exist is a ConfigurationError."""
    try:
        return path.expanduser()
    except RuntimeError:  # pathlib: "Could not determine home directory."
        raise ConfigurationError(
            f"{name}={str(path)!r}: cannot expand {path.parts[0]!r} (no such user, or no home "
            "directory); expected a directory path"
        ) from None


def _convert(field: str, name: str, raw: object) -> object:
    """Turn a raw argument or environment string into the field's type."""
    if not isinstance(raw, str):
        return _convert_object(field, name, raw)
    if field == "home":
        if not raw.strip():
            raise ConfigurationError(f"{name} is empty: expected a directory path")
        if "\0" in raw:
            raise ConfigurationError(f"{name}={raw!r}: a NUL byte; expected a directory path")
        return _expand(name, Path(raw))
    if field == "urls":
        return _split_urls(name, raw)
    if field in {"offline", "disable_progress", "allow_http"}:
        return _parse_bool(name, raw)
    if field in {"retries", "connections", "parallel_min_size"}:
        value = int(_parse_number(name, raw, int))
        if field == "connections" and value < 1:
            raise ConfigurationError(f"{name}={raw!r}: expected at least 1 connection")
        return value
    if field in {"connect_timeout", "read_timeout", "backoff", "backoff_max", "retry_after_max"}:
        return float(_parse_number(name, raw, float))
    if field in _TRANSPORT_KINDS:
        return _TRANSPORT_KINDS[field](_parse_number(name, raw, _TRANSPORT_KINDS[field]))
    if field == "hf_endpoint":
        _check_url(name, raw.strip())
        return raw.strip().rstrip("/")
    if field == "hf_token":
        return raw.strip() or None
    return raw


def resolve(**overrides: object) -> Config:
    """Resolve the configuration: keyword argument > environment variable > default.

    Keyword names are :class:`Config` field names (``home``, ``urls``, ``offline``...); a
    ``None`` argument counts as "not given". Invalid values raise
    :class:`~omnihub.errors.ConfigurationError` naming the variable and what was expected.
    Base URLs are checked against the transport policy by :mod:`omnihub.urls` when used.
    """
    unknown = set(overrides) - set(ENV)
    if unknown:
        raise ConfigurationError(f"unknown configuration setting(s): {', '.join(sorted(unknown))}")
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    environ = os.environ
    for field, names in ENV.items():
        given = overrides.get(field)
        if given is not None:
            values[field] = _convert(field, field, given)
            _check_range(field, field, values[field])
            sources[field] = "argument"
            continue
        for name in names:
            text = environ.get(name)
            if text is not None and (text.strip() or field in {"offline", "disable_progress"}):
                values[field] = _convert(field, name, text)
                _check_range(field, name, values[field])
                sources[field] = f"environment ({name})"
                break
        else:
            values[field] = _default_home() if field == "home" else _DEFAULTS[field]
            sources[field] = "default"
    return Config(sources=sources, **values)  # type: ignore[arg-type]


def resolve_home() -> Path:
    """Only the cache home, as :func:`resolve` would give it (``OMNIHUB_HOME``, else
    ``~/.omnihub``): all a cache hit needs. A mistake in a download setting is reported when
    a download needs it, not on every hit of a cached model. Remembered per value of the
    variables it depends on, so a changed environment is still honoured."""
    environ = os.environ
    given = environ.get(_HOME_VARIABLE)
    if given is not None and given.strip():
        return _home_from(given)
    return _user_home(environ.get("HOME"), environ.get("USERPROFILE"))


(_HOME_VARIABLE,) = ENV["home"]


@functools.lru_cache(maxsize=64)
def _home_from(text: str) -> Path:
    home = _convert("home", _HOME_VARIABLE, text)
    assert isinstance(home, Path)
    return home


@functools.lru_cache(maxsize=8)
def _user_home(_home: str | None, _profile: str | None) -> Path:
    return _default_home()  # depends on HOME (POSIX) or USERPROFILE (Windows)


def describe(config: Config | None = None) -> list[Setting]:
    """List every setting of ``config`` (default: :func:`resolve`) with where it came from.

    The Hugging Face token is shown only as "set" or "unset", never its value, and URLs are
    shown without any ``user:password@`` or query string.
    """
    cfg = resolve() if config is None else config
    rows: list[Setting] = []
    for field in ENV:
        value = getattr(cfg, field)
        if field == "hf_token":
            shown = "unset" if value is None else "set (hidden)"
        elif field == "urls":
            shown = " ".join(redact_url(u) for u in value)
        elif field == "hf_endpoint":
            shown = redact_url(value)
        else:
            shown = str(value)
        rows.append(Setting(field, shown, cfg.sources.get(field, "argument")))
    return rows
