"""Where model files come from: a priority-ordered registry of repositories (DL4J ADR 0076).

Built in, in fallback order:

- ``omnihub`` -- the omnihub zoo at ``$OMNIHUB_URL/<framework>/<file>``; ``OMNIHUB_URL``
  may list several mirrors (``https://``, loopback ``http://``, ``file://``, or an object store
  through fsspec: ``s3://``, ``gs://``, ``az://``, ...), tried in order.
- ``huggingface`` -- a Hugging Face Hub repository, for entries with ``hugging_face_id``:
  ``<endpoint>/<repo id>/resolve/<revision>/<file>``; with ``file_pattern`` the file is chosen
  from the repository listing (``<endpoint>/api/models/<repo id>/revision/<revision>``).
  Endpoint and token come from ``HF_ENDPOINT`` and ``HF_TOKEN``.
- ``url`` (alias ``onnx-model-zoo``) -- the entry's own absolute ``url``. Used only by
  entries that name it, never as a fallback, so a local mirror never leaks to the internet.

Users add repositories with :func:`register_repository` or an ``omnihub.repositories``
entry point (an object with ``name`` and ``sources()``, or a callable returning one).
An entry with ``repository=None`` walks the fallback chain; an entry naming a repository
uses only that one.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from omnihub.errors import ConfigurationError, DownloadError, ModelNotFoundError
from omnihub.urls import (
    build_hf_url,
    build_model_url,
    check_base_url,
    check_remote_url,
    redact_url,
    split_name,
)

if TYPE_CHECKING:
    from omnihub.catalog import ModelEntry
    from omnihub.config import Config

__all__ = [
    "ENTRY_POINT_GROUP",
    "HuggingFaceRepository",
    "Repository",
    "Source",
    "UrlRepository",
    "ZooRepository",
    "register_repository",
    "registered_repositories",
    "repositories_for",
    "unregister_repository",
]

logger = logging.getLogger("omnihub")

#: The entry-point group third-party packages register repositories under.
ENTRY_POINT_GROUP = "omnihub.repositories"


@attrs.frozen
class Source:
    """One concrete place to fetch a model file from.

    ``headers`` (e.g. ``Authorization``) are sent only to the URL's own origin, never
    across a redirect to another host. ``allow_file`` marks configured mirrors: only those may
    be ``file://`` or object-store (``s3://``, ...) URLs.
    """

    url: str
    repository: str
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    allow_file: bool = False


@runtime_checkable
class Repository(Protocol):
    """A place models can be fetched from."""

    @property
    def name(self) -> str:
        """The name entries use to select this repository."""

    def sources(self, entry: ModelEntry, config: Config) -> Sequence[Source]:
        """The URLs to try for ``entry``, best first; empty if this repository cannot serve it.

        May raise :class:`~omnihub.errors.ModelNotFoundError` or
        :class:`~omnihub.errors.DownloadError` (the chain then moves on to the next one).
        """


@attrs.frozen
class ZooRepository:
    """An omnihub-zoo layout: ``<base>/<framework>/<file>`` for each mirror base URL.

    ``urls=None`` means the configured ``OMNIHUB_URL`` mirrors.
    """

    name: str = "omnihub"
    urls: tuple[str, ...] | None = None

    def sources(self, entry: ModelEntry, config: Config) -> Sequence[Source]:
        bases = config.urls if self.urls is None else self.urls
        return [
            Source(
                build_model_url(
                    check_base_url(base, allow_http=config.allow_http),
                    str(entry.framework),
                    entry.file,
                ),
                self.name,
                allow_file=True,
            )
            for base in bases
        ]


@attrs.frozen
class UrlRepository:
    """The entry's own absolute ``url`` (https, or http to loopback; never ``file://``)."""

    name: str = "url"

    def sources(self, entry: ModelEntry, config: Config) -> Sequence[Source]:
        if not entry.url:
            return []
        check_remote_url(entry.url, allow_http=config.allow_http, allow_file=False)
        return [Source(entry.url, self.name)]


def _json_get(url: str, headers: Mapping[str, str], config: Config, what: str) -> object:
    """GET a small JSON document (the Hub's listing API) with the download transport rules."""
    import requests

    check_remote_url(url, allow_http=config.allow_http, allow_file=False)
    try:
        response = requests.get(
            url,
            headers=dict(headers),
            timeout=(config.connect_timeout, config.read_timeout),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise DownloadError(
            f"{what}: {redact_url(url)} unreachable: {type(exc).__name__}"
        ) from None
    with response:
        if response.status_code in (401, 403, 404):
            raise ModelNotFoundError(
                f"{what}: {redact_url(url)} answered HTTP {response.status_code}"
            )
        if response.status_code != 200:
            raise DownloadError(f"{what}: {redact_url(url)} answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise DownloadError(f"{what}: {redact_url(url)} did not return JSON") from None


@attrs.frozen
class HuggingFaceRepository:
    """A Hugging Face Hub repository (``entry.hugging_face_id``), GGUF/SafeTensors friendly.

    ``endpoint``/``token`` default to ``HF_ENDPOINT``/``HF_TOKEN`` from the configuration.
    """

    name: str = "huggingface"
    endpoint: str | None = None
    token: str | None = attrs.field(default=None, repr=False)

    def _headers(self, config: Config) -> dict[str, str]:
        token = self.token if self.token is not None else config.hf_token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def list_files(self, repo_id: str, revision: str, config: Config) -> list[str]:
        """The file names in ``repo_id`` at ``revision``, from the Hub's model API."""
        from urllib.parse import quote

        endpoint = check_base_url(self.endpoint or config.hf_endpoint, allow_http=config.allow_http)
        split_name(repo_id, "Hugging Face repository id")
        url = (
            f"{endpoint}/api/models/{quote(repo_id, safe='/')}/revision/{quote(revision, safe='')}"
        )
        data = _json_get(url, self._headers(config), config, f"Hugging Face repository {repo_id}")
        siblings = data.get("siblings") if isinstance(data, dict) else None
        if not isinstance(siblings, list):
            raise DownloadError(f"{redact_url(url)}: listing has no 'siblings' list")
        return sorted(
            s["rfilename"]
            for s in siblings
            if isinstance(s, dict) and isinstance(s.get("rfilename"), str)
        )

    def remote_file(self, entry: ModelEntry, config: Config) -> str:
        """The file to fetch: ``entry.file``, or the one file matching ``entry.file_pattern``."""
        repo_id = entry.hugging_face_id or ""
        revision = entry.revision or "main"
        if not entry.file_pattern:
            return entry.file
        if not any(c in entry.file_pattern for c in "*?["):
            return entry.file_pattern  # a literal name: no listing needed
        names = self.list_files(repo_id, revision, config)
        matches = [n for n in names if fnmatch.fnmatchcase(n, entry.file_pattern)]
        if len(matches) > 1:
            exact = [n for n in matches if n == entry.file or n.rsplit("/", 1)[-1] == entry.file]
            matches = exact or matches
        if not matches:
            raise ModelNotFoundError(
                f"Hugging Face repository {repo_id}@{revision} has no file matching "
                f"{entry.file_pattern!r} (files: {', '.join(names[:20]) or 'none'})"
            )
        if len(matches) > 1:
            raise ConfigurationError(
                f"{entry.source or entry.name}: file_pattern {entry.file_pattern!r} matches "
                f"{len(matches)} files in {repo_id}@{revision} ({', '.join(matches[:10])}); "
                "make it match exactly one"
            )
        return matches[0]

    def sources(self, entry: ModelEntry, config: Config) -> Sequence[Source]:
        if not entry.hugging_face_id:
            return []
        endpoint = check_base_url(self.endpoint or config.hf_endpoint, allow_http=config.allow_http)
        file = self.remote_file(entry, config)
        url = build_hf_url(endpoint, entry.hugging_face_id, entry.revision or "main", file)
        return [Source(url, self.name, headers=self._headers(config))]


@attrs.frozen
class _Registered:
    priority: int
    order: int
    repository: Repository
    fallback: bool


_lock = threading.Lock()
_registry: dict[str, _Registered] = {}
_state = {"entry_points_loaded": False, "counter": 0}


def register_repository(
    repository: Repository,
    *,
    priority: int = 100,
    fallback: bool = True,
    name: str | None = None,
    replace: bool = False,
) -> None:
    """Add ``repository`` to the registry under ``name`` (default ``repository.name``).

    Lower ``priority`` is tried first (the zoo is 0, Hugging Face 10). ``fallback=False``
    keeps it out of the chain: only entries naming it use it.
    """
    key = name or repository.name
    if not isinstance(repository, Repository):
        raise ConfigurationError(f"repository {key!r} lacks a name and a sources() method")
    with _lock:
        if key in _registry and not replace:
            raise ConfigurationError(f"a repository named {key!r} is already registered")
        _state["counter"] += 1
        _registry[key] = _Registered(priority, _state["counter"], repository, fallback)


def unregister_repository(name: str) -> None:
    """Remove a registered repository (built-in ones included); unknown names are ignored."""
    with _lock:
        _registry.pop(name, None)


def _load_entry_points() -> None:
    if _state["entry_points_loaded"]:
        return
    _state["entry_points_loaded"] = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            repo = obj if isinstance(obj, Repository) else obj()
            register_repository(repo, name=repo.name or ep.name)
        except Exception as exc:  # a broken plugin must not break every download
            logger.warning("ignoring repository entry point %r: %s", ep.value, exc)


def registered_repositories() -> list[tuple[str, Repository, int, bool]]:
    """``(name, repository, priority, in fallback chain)`` in resolution order."""
    _load_entry_points()
    with _lock:
        items = sorted(_registry.items(), key=lambda kv: (kv[1].priority, kv[1].order))
    return [(k, r.repository, r.priority, r.fallback) for k, r in items]


def repositories_for(entry: ModelEntry) -> list[Repository]:
    """The repositories to try for ``entry``, in order."""
    if entry.repository is not None:
        with _lock:
            found = _registry.get(entry.repository)
        if found is None:
            _load_entry_points()
            with _lock:
                found = _registry.get(entry.repository)
        if found is None:
            known = ", ".join(name for name, *_ in registered_repositories())
            raise ConfigurationError(
                f"model {entry.name!r} ({entry.source or entry.package}) names repository "
                f"{entry.repository!r}, which is not registered (known: {known})"
            )
        return [found.repository]
    return [repo for _, repo, _, fallback in registered_repositories() if fallback]


register_repository(ZooRepository(), priority=0)
register_repository(HuggingFaceRepository(), priority=10)
register_repository(UrlRepository(), priority=20, fallback=False)
register_repository(UrlRepository(name="onnx-model-zoo"), priority=20, fallback=False)
