"""The one rule for model URLs and the file names derived from them.

omnihub-compile and the runtime must accept exactly the same names: a spec that compiles
must not be refused at run time, and no URL may silently turn into another file. Both sides
therefore use these functions, which build on :func:`omnihub.urls.split_name` (the rule the
runtime applies to every cache path):

- :func:`check_model_url`: an absolute http(s) URL with a plain ASCII host, no credentials,
  whitespace, control characters, query or fragment, ending with a file name;
- :func:`last_segment_file`: DL4J's rule (``OmniHubUtils``: the file is the URL's last path
  segment), percent-decoded strictly;
- :func:`check_repository`: a repository name the runtime has registered;
- :func:`file_under`: the rest of a URL under a repository base (the cache keeps the
  repository's layout), and with ``canonical=True`` only when the runtime, rebuilding the
  URL from that file, fetches exactly the same URL.

Every problem is a :class:`~omnihub.errors.ConfigurationError` whose message names the URL
and what was expected; nothing here raises anything else for any input string.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, quote, unquote, urlsplit

from omnihub.errors import ConfigurationError
from omnihub.urls import split_name

__all__ = [
    "MAX_SIZE",
    "check_model_url",
    "check_repository",
    "file_under",
    "last_segment_file",
]

#: The largest file size a catalogue may declare (a signed 64-bit offset).
MAX_SIZE = 2**63 - 1

_BAD_CHAR = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?)+\Z|\[[0-9A-Fa-f:.]+\]\Z")


def _fail(url: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"url {url!r} {problem}")


def check_model_url(url: str) -> SplitResult:
    """Check that ``url`` can be a model URL and return its parts."""
    if not isinstance(url, str):
        raise ConfigurationError(f"url {url!r}: expected a string")
    if _BAD_CHAR.search(url):
        raise _fail(url, "contains whitespace or a control character")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _fail(url, f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _fail(url, "must be an absolute http(s) URL")
    host = parts.netloc.rpartition("@")[2]
    if port is not None:
        host = host.rpartition(":")[0]
    if "@" in parts.netloc:
        raise _fail(url, "must not contain credentials")
    if not _HOST.match(host):
        raise _fail(url, f"has an invalid host {host!r} (ASCII letters, digits, '-' and '.')")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise _fail(url, "must not have a query or fragment")
    if not parts.path or parts.path.endswith("/"):
        raise _fail(url, "must end with the model file name")
    return parts


def _decode(url: str, encoded: str) -> str:
    """Percent-decode a ``/``-separated path strictly and validate it as a file name."""
    segments = []
    for segment in encoded.split("/"):
        try:
            decoded = unquote(segment, errors="strict")
        except UnicodeDecodeError:
            raise _fail(url, f"segment {segment!r} is not percent-encoded UTF-8") from None
        if "/" in decoded:
            raise _fail(url, f"segment {segment!r} encodes '/'")
        segments.append(decoded)
    file = "/".join(segments)
    try:
        split_name(file, "model file")
    except ConfigurationError as exc:
        raise _fail(url, f"gives an invalid {exc}") from None
    return file


def last_segment_file(url: str) -> str:
    """DL4J's rule: the model file is the URL's last path segment, percent-decoded."""
    parts = check_model_url(url)
    return _decode(url, parts.path.rsplit("/", 1)[-1])


def file_under(url: str, base: str, *, canonical: bool = False) -> str:
    """The file of ``url`` relative to ``base`` (which ends with ``/``).

    ``canonical``: the runtime rebuilds the URL from the file (percent-encoding every
    segment, as :func:`omnihub.urls.build_model_url` does), so the spec's URL must be exactly
    that encoding; otherwise the URL fetched would differ from the one written.
    """
    check_model_url(url)
    if not url.startswith(base):
        raise _fail(url, f"is not under {base!r}")
    file = _decode(url, url[len(base) :])
    if canonical:
        rebuilt = base + "/".join(quote(s, safe="") for s in file.split("/"))
        if rebuilt != url:
            raise _fail(url, f"is not percent-encoded canonically; the runtime fetches {rebuilt!r}")
    return file


def check_repository(name: str) -> str:
    """Check that ``name`` is a repository the runtime knows (built in or an entry point)."""
    from omnihub.repositories import registered_repositories

    known = [registered[0] for registered in registered_repositories()]
    if name not in known:
        raise ConfigurationError(
            f"repository {name!r} is not registered in the runtime (known: {', '.join(known)})"
        )
    return name
