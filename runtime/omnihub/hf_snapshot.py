"""Hugging Face models as DL4J has them: every file of a repository matching a glob.

DL4J's ``GGUFModel``/``SafeTensorsModel`` take a ``filePattern`` that may be a glob or null
(every file); ``HuggingFaceHubDownloader`` downloads every matching file of the repository
into ``$OMNIHUB_HOME/huggingface/<repo id>/``. An entry is such a *snapshot* when it has a
``hugging_face_id`` and its ``file_pattern`` is None or contains ``*``/``?`` (a literal
name stays one file, fetched by :func:`omnihub.hub.fetch`).

:func:`fetch_snapshot` lists the repository at the pinned revision through the Hub API
(``<endpoint>/api/models/<repo id>/revision/<revision>?blobs=true``), keeps the files whose
repository path matches the pattern by DL4J's rule (``*`` any run of characters, ``/``
included; ``?`` one character; everything else literal; the whole path must match), and
downloads each through :func:`omnihub.download.download` from
``<endpoint>/<repo id>/resolve/<revision>/<path>``, verified against the listing: LFS files
by sha256 and size, others by size and their git blob id. Each verified file is fsynced and
moved into place atomically; a record of the snapshot (the files with size, mtime and
sha256) then makes the next call a few ``stat`` calls with no network, which also works
offline. A glob matching nothing is a :class:`~omnihub.errors.ModelNotFoundError` naming
the pattern and the repository's files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from omnihub.errors import ConfigurationError, DownloadError, IntegrityError, ModelNotFoundError
from omnihub.urls import build_hf_url, check_base_url, redact_url, split_name

if TYPE_CHECKING:
    from omnihub.catalog import ModelEntry
    from omnihub.config import Config

__all__ = [
    "RemoteFile",
    "Snapshot",
    "dl4j_glob",
    "fetch_snapshot",
    "is_snapshot",
    "list_repository",
    "snapshot_directory",
]

_RECORD_VERSION = 1


def is_snapshot(entry: ModelEntry) -> bool:
    """Whether ``entry`` is every file of a Hub repository matching a glob (or all files)."""
    pattern = entry.file_pattern
    return bool(entry.hugging_face_id) and (pattern is None or "*" in pattern or "?" in pattern)


def dl4j_glob(pattern: str | None) -> re.Pattern[str]:
    """DL4J's ``globToRegex``: ``*`` -> ``.*``, ``?`` -> ``.``, the rest literal; None: all."""
    if pattern is None:
        return re.compile(r".*", re.DOTALL)
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


@attrs.frozen
class RemoteFile:
    """One file of the repository listing: its path and what verifies it."""

    path: str
    size: int | None
    sha256: str | None  # LFS files
    blob_id: str | None  # the git blob sha1 (every file)


@attrs.frozen
class Snapshot:
    """The files of a snapshot model in the cache.

    ``directory`` is ``$OMNIHUB_HOME/huggingface/<repo id>``; ``files`` the matching files,
    sorted; ``path`` the one file when exactly one matched, else the directory.
    """

    directory: Path
    files: tuple[Path, ...]
    entry: ModelEntry = attrs.field(repr=False)

    @property
    def path(self) -> Path:
        """The single matching file, or the directory holding several."""
        return self.files[0] if len(self.files) == 1 else self.directory


def snapshot_directory(entry: ModelEntry, config: Config) -> Path:
    """``$OMNIHUB_HOME/huggingface/<repo id>`` (DL4J's layout)."""
    repo = split_name(entry.hugging_face_id or "", "Hugging Face repository id")
    if len(repo) != 2:
        raise ConfigurationError(
            f"Hugging Face repository id {entry.hugging_face_id!r}: expected 'owner/name'"
        )
    return config.home.joinpath("huggingface", *repo)


def _headers(config: Config) -> dict[str, str]:
    return {"Authorization": f"Bearer {config.hf_token}"} if config.hf_token else {}


def _remote_file(item: object, url: str) -> RemoteFile | None:
    if not isinstance(item, Mapping) or not isinstance(item.get("rfilename"), str):
        return None
    lfs = item.get("lfs")
    sha256 = lfs.get("sha256") if isinstance(lfs, Mapping) else None
    size = item.get("size")
    if isinstance(lfs, Mapping) and isinstance(lfs.get("size"), int):
        size = lfs["size"]
    blob = item.get("blobId")
    split_name(item["rfilename"], f"file in the listing {redact_url(url)}")
    return RemoteFile(
        path=item["rfilename"],
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        sha256=sha256.lower() if isinstance(sha256, str) else None,
        blob_id=blob.lower() if isinstance(blob, str) else None,
    )


def list_repository(repo_id: str, revision: str, config: Config) -> list[RemoteFile]:
    """Every file of ``repo_id`` at ``revision`` with its size, sha256 and blob id."""
    from urllib.parse import quote

    from omnihub.repositories import _json_get  # the Hub listing GET, transport rules applied

    endpoint = check_base_url(config.hf_endpoint, allow_http=config.allow_http)
    url = (
        f"{endpoint}/api/models/{quote(repo_id, safe='/')}/revision/"
        f"{quote(revision, safe='')}?blobs=true"
    )
    what = f"Hugging Face repository {repo_id}@{revision}"
    data = _json_get(url, _headers(config), config, what)
    siblings = data.get("siblings") if isinstance(data, dict) else None
    if not isinstance(siblings, list):
        raise DownloadError(f"{what}: {redact_url(url)}: the listing has no 'siblings' list")
    files = [f for f in (_remote_file(item, url) for item in siblings) if f is not None]
    return sorted(files, key=lambda f: f.path)


def _git_blob_id(path: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _download_one(
    entry: ModelEntry, remote: RemoteFile, directory: Path, revision: str, config: Config
) -> tuple[Path, str]:
    """Download ``remote`` into ``directory``, verified; return its path and sha256."""
    from omnihub.download import download

    endpoint = check_base_url(config.hf_endpoint, allow_http=config.allow_http)
    repo_id = entry.hugging_face_id or ""
    url = build_hf_url(endpoint, repo_id, revision, remote.path)
    target = directory.joinpath(*split_name(remote.path))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".incomplete")
    label = f"{entry.name} ({repo_id}/{remote.path}@{revision})"
    transfer = download(
        url,
        partial,
        config=config,
        expected_size=remote.size,
        expected_sha256=remote.sha256,
        private_headers=_headers(config),
        label=label,
    )
    if remote.sha256 is None and remote.blob_id is not None:
        actual = _git_blob_id(partial)
        if actual != remote.blob_id:
            partial.unlink(missing_ok=True)
            raise IntegrityError(
                f"{label}: git blob id {actual} does not match the listing's {remote.blob_id}"
            )
    _fsync(partial)
    os.replace(partial, target)
    _fsync(target.parent, directory=True)
    return target, transfer.sha256


def _record_path(directory: Path, entry: ModelEntry, revision: str) -> Path:
    key = hashlib.sha256(f"{revision}\0{entry.file_pattern}".encode()).hexdigest()[:16]
    return directory / f".omnihub-snapshot-{key}.json"


def _cached(directory: Path, record: Path) -> tuple[Path, ...] | None:
    """The recorded files when every one is still as recorded (size and mtime), else None."""
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        if data.get("version") != _RECORD_VERSION:
            return None
        files = []
        for name, (size, mtime_ns, _sha256) in sorted(data["files"].items()):
            path = directory.joinpath(*split_name(name))
            st = path.stat()
            if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                return None
            files.append(path)
        return tuple(files) or None
    except (OSError, ValueError, KeyError, TypeError, ConfigurationError):
        return None


def _write_record(record: Path, files: Sequence[tuple[str, Path, str]]) -> None:
    entries = {}
    for name, path, sha256 in files:
        st = path.stat()
        entries[name] = [st.st_size, st.st_mtime_ns, sha256]
    partial = record.with_name(record.name + ".incomplete")
    partial.write_text(json.dumps({"version": _RECORD_VERSION, "files": entries}, sort_keys=True))
    _fsync(partial)
    os.replace(partial, record)


def fetch_snapshot(
    entry: ModelEntry, *, force_download: bool = False, config: Config | None = None
) -> Snapshot:
    """Every file of ``entry``'s repository matching its pattern, downloaded and verified."""
    from filelock import FileLock

    from omnihub.config import resolve
    from omnihub.errors import OfflineError

    cfg = resolve() if config is None else config
    if not is_snapshot(entry):
        raise ConfigurationError(f"model {entry.name!r} is not a Hugging Face snapshot")
    directory = snapshot_directory(entry, cfg)
    revision = entry.revision or "main"
    directory.mkdir(parents=True, exist_ok=True)
    record = _record_path(directory, entry, revision)
    with FileLock(str(record.with_suffix(".lock"))):
        cached = None if force_download else _cached(directory, record)
        if cached is not None:
            return Snapshot(directory, cached, entry)
        repo_id = entry.hugging_face_id or ""
        if cfg.offline:
            raise OfflineError(
                f"model {entry.name!r}: {repo_id}@{revision} ({entry.file_pattern or 'every file'})"
                f" is not in the cache ({directory}) and OMNIHUB_OFFLINE is set"
            )
        listing = list_repository(repo_id, revision, cfg)
        pattern = dl4j_glob(entry.file_pattern)
        matches = [f for f in listing if pattern.fullmatch(f.path)]
        if not matches:
            names = ", ".join(f.path for f in listing[:20]) or "none"
            raise ModelNotFoundError(
                f"model {entry.name!r}: Hugging Face repository {repo_id}@{revision} has no"
                f" file matching {entry.file_pattern!r} (files: {names})"
            )
        done = []
        for remote in matches:
            path, sha256 = _download_one(entry, remote, directory, revision, cfg)
            done.append((remote.path, path, sha256))
        _write_record(record, done)
        return Snapshot(directory, tuple(path for _, path, _ in done), entry)
