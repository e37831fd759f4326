"""Copy verified model files into a mirror (a directory or any fsspec URL) and check mirrors.

A mirror has the zoo's layout, ``<DEST>/<framework>/<file>``, so ``OMNIHUB_URL`` (or an
nginx or object-store front end) can point at it, plus a manifest, ``<DEST>/omnihub-mirror.json``,
listing each file's name, sha256, size and source.

:func:`mirror` gets every file through the public :func:`omnihub.hub.fetch` (a cache hit when
it is cached, a verified download otherwise), copies it to the destination and verifies what
the destination now holds before it counts as mirrored:

- a local directory (a plain path or ``file://``) is written to a temporary name beside the
  target, fsynced, read back and hashed, then renamed into place (a reader never sees half a
  file);
- an fsspec URL (``s3://bucket/prefix``, ``gs://``, ``az://``, ...) is written with the
  filesystem's ``put_file``; the copy is verified by its size plus, on S3, the ETag the store
  computed from the bytes it received (the MD5 of the object, or of its parts for a multipart
  upload) against the same digest of the local file. When the ETag does not have that form
  (server-side encryption with KMS, another upload part size) the object is read back and its
  sha256 compared instead.

The sha256 the manifest records is the catalogue's for a pinned model (``fetch`` verified the
cached copy against it) and is computed from the cached copy otherwise, while it uploads.
A file already at the destination with the right size and digest is skipped, so running the
command again finishes what an interrupted run started. :func:`check` verifies a mirror
against its manifest by reading every file back; it never downloads a model.

fsspec is an optional dependency (``pip install 'omnihub[mirror]'``, or ``omnihub[s3]`` for
s3fs); a missing implementation is a one-line :class:`~omnihub.errors.ConfigurationError`
naming the package to install.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import attrs

from omnihub.catalog import ModelEntry
from omnihub.config import Config, resolve
from omnihub.errors import OmnihubError
from omnihub.hub import fetch
from omnihub.object_store import filesystem
from omnihub.search import qualified_name
from omnihub.urls import redact_url

__all__ = [
    "MANIFEST_NAME",
    "CheckedFile",
    "MirrorError",
    "MirroredFile",
    "Store",
    "background",
    "check",
    "mirror",
    "open_store",
    "s3_etag",
    "s3_parts",
]

#: The manifest written at the root of every mirror.
MANIFEST_NAME = "omnihub-mirror.json"
MANIFEST_VERSION = 1
_CHUNK = 8 << 20
#: s3fs's upload part size (``calculate_chunksize``): 50 MiB, larger when 10,000 parts would not do.
_S3_PART = 50 << 20
_S3_MAX_PARTS = 10_000

Progress = Callable[[int], None]
#: A sha256 being computed in the background: calling it waits for the hex digest.
Digest = Callable[[], str]
T = TypeVar("T")


def background(fn: Callable[[], T]) -> Callable[[], T]:
    """Start ``fn`` on a daemon thread; the returned callable waits for its result (or error).

    Hashing releases the GIL, so a local file is hashed while it is being uploaded.
    """
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="omnihub-mirror-hash", daemon=True).start()
    return future.result


class MirrorError(OmnihubError):
    """The destination could not be written, or refused to hold what was written to it."""


@attrs.frozen
class MirroredFile:
    """What :func:`mirror` did with one model: ``copied``, ``present`` (skipped) or ``failed``."""

    name: str
    path: str  # <framework>/<file>, relative to the mirror root
    status: str
    sha256: str | None = None
    size: int | None = None
    source: str | None = None
    error: str | None = None


@attrs.frozen
class CheckedFile:
    """One manifest entry as :func:`check` found it: ``ok``, ``missing``, ``size`` or ``sha256``."""

    name: str
    path: str
    status: str
    message: str = ""

    @property
    def ok(self) -> bool:
        """Whether the mirror holds exactly the file the manifest describes."""
        return self.status == "ok"


class Store(Protocol):
    """Where a mirror lives: the few operations :func:`mirror` and :func:`check` need."""

    url: str

    def size(self, path: str) -> int | None:
        """The size of ``path`` (relative to the mirror root), or None when it is absent."""

    def holds(self, path: str, local: Path, sha256: Digest) -> bool:
        """Whether ``path`` already holds the bytes of ``local`` (``sha256()`` gives its hash)."""

    def put(self, local: Path, path: str, sha256: Digest, progress: Progress) -> None:
        """Copy ``local`` to ``path`` and verify the copy; raise :class:`MirrorError` if bad."""

    def read_sha256(self, path: str, progress: Progress) -> str:
        """Read ``path`` back and return its sha256."""

    def remove(self, path: str) -> None:
        """Delete ``path`` if it exists."""

    def read_text(self, path: str) -> str | None:
        """The text of ``path``, or None when absent."""

    def write_text(self, path: str, text: str) -> None:
        """Replace ``path`` with ``text`` (atomically where the store allows)."""


def _hash_stream(stream: IO[bytes], progress: Progress) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        progress(len(chunk))
    return digest.hexdigest()


def _ignore(_count: int) -> None:
    pass


def file_sha256(path: Path, progress: Progress = _ignore) -> str:
    """The sha256 of a local file, read in 8 MiB chunks."""
    with path.open("rb") as stream:
        return _hash_stream(stream, progress)


class LocalStore:
    """A mirror in a local (or locally mounted) directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri()

    def _path(self, path: str) -> Path:
        return self.root.joinpath(*path.split("/"))

    def size(self, path: str) -> int | None:
        try:
            return self._path(path).stat().st_size
        except FileNotFoundError:
            return None

    def holds(self, path: str, local: Path, sha256: Digest) -> bool:
        if self.size(path) != local.stat().st_size:
            return False
        return self.read_sha256(path, _ignore) == sha256()

    def put(self, local: Path, path: str, sha256: Digest, progress: Progress) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out, local.open("rb") as source:
                while chunk := source.read(_CHUNK):
                    out.write(chunk)
                    progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            written, expected = file_sha256(temp), sha256()
            if written != expected:
                raise MirrorError(
                    f"{target}: read back sha256 {written}, expected {expected} (disk or copy "
                    "fault)"
                )
            os.chmod(temp, 0o644)
            os.replace(temp, target)
            _fsync_dir(target.parent)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise

    def read_sha256(self, path: str, progress: Progress) -> str:
        return file_sha256(self._path(path), progress)

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(path).unlink()

    def read_text(self, path: str) -> str | None:
        try:
            return self._path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def write_text(self, path: str, text: str) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp_name, 0o644)
            os.replace(temp_name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _s3_part_size(size: int) -> int:
    return max(_S3_PART, math.ceil(size / _S3_MAX_PARTS))


def s3_parts(size: int) -> int:
    """How many parts s3fs's ``put_file`` uploads a file of ``size`` bytes in (1: one PUT)."""
    part = _s3_part_size(size)
    return 1 if size < min(5 << 30, 2 * part) else math.ceil(size / part)


def s3_etag(path: Path, parts: int, size: int) -> str | None:
    """The ETag S3 gives ``path`` uploaded as s3fs uploads it in ``parts`` parts, else None.

    One part: the MD5 of the content. Several: the MD5 of the parts' MD5s, then ``-<parts>``,
    with s3fs's part size (50 MiB, or ``ceil(size / 10000)`` when that is larger). None when
    ``parts`` does not fit that part size (the object was written some other way).
    """
    if parts <= 1:
        with path.open("rb") as stream:
            return _md5_stream(stream)
    part = _s3_part_size(size)
    if math.ceil(size / part) != parts:
        return None
    digests = []
    with path.open("rb") as stream:
        for _ in range(parts):
            digest = hashlib.md5(usedforsecurity=False)
            left = part
            while left and (chunk := stream.read(min(_CHUNK, left))):
                digest.update(chunk)
                left -= len(chunk)
            digests.append(digest.digest())
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{parts}"


def _md5_stream(stream: IO[bytes]) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


class _Callback:
    """Adapts a byte-count :data:`Progress` to fsspec's callback protocol (built lazily)."""

    @staticmethod
    def make(progress: Progress) -> Any:
        from fsspec.callbacks import Callback

        class Relay(Callback):  # type: ignore[misc]
            def relative_update(self, inc: int = 1) -> None:
                progress(inc)

        return Relay()


class FsspecStore:
    """A mirror behind an fsspec URL; credentials come from the implementation's own chain."""

    def __init__(self, url: str, fs: Any, root: str) -> None:
        self.url = url
        self.fs = fs
        self.root = root.rstrip("/")
        protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
        self.is_s3 = bool({"s3", "s3a"} & set(protocols))

    def _path(self, path: str) -> str:
        return f"{self.root}/{path}"

    def _info(self, path: str) -> dict[str, Any] | None:
        try:
            self.fs.invalidate_cache(self._path(path))
            info: dict[str, Any] = self.fs.info(self._path(path))
        except FileNotFoundError:
            return None
        return info

    def size(self, path: str) -> int | None:
        info = self._info(path)
        return None if info is None else int(info["size"])

    def _digest_matches(
        self, info: dict[str, Any], local: Path, predicted: tuple[int, str | None] | None = None
    ) -> bool | None:
        """On S3: whether the store's ETag is the local file's; None when it cannot say.

        ``predicted`` is ``(parts, etag)`` already computed for the upload just made.
        """
        etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
        if not self.is_s3 or not etag:
            return None
        _, _, count = etag.partition("-")
        parts = int(count) if count.isdigit() else 1
        if predicted is not None and predicted[0] == parts:
            expected = predicted[1]
        else:
            expected = s3_etag(local, parts, local.stat().st_size)
        if expected is None or ("-" in etag) != ("-" in expected):
            return None
        return etag == expected

    def holds(self, path: str, local: Path, sha256: Digest) -> bool:
        info = self._info(path)
        if info is None or int(info["size"]) != local.stat().st_size:
            return False
        matches = self._digest_matches(info, local)
        if matches is not None:
            return matches
        return self.read_sha256(path, _ignore) == sha256()

    def put(self, local: Path, path: str, sha256: Digest, progress: Progress) -> None:
        target = self._path(path)
        size = local.stat().st_size
        parts = s3_parts(size)
        etag = background(lambda: s3_etag(local, parts, size)) if self.is_s3 else None
        try:
            self.fs.makedirs(self.fs._parent(target), exist_ok=True)
            self.fs.put_file(str(local), target, callback=_Callback.make(progress))
        except OSError:
            raise
        except Exception as exc:  # botocore and friends raise their own types
            raise MirrorError(f"{redact_url(self.url)}/{path}: upload failed: {exc}") from exc
        info = self._info(path)
        if info is None or int(info["size"]) != size:
            found = "nothing" if info is None else f"{info['size']} bytes"
            raise MirrorError(f"{redact_url(self.url)}/{path}: holds {found}, expected {size}")
        matches = self._digest_matches(info, local, None if etag is None else (parts, etag()))
        if matches is None:
            matches = self.read_sha256(path, _ignore) == sha256()
        if not matches:
            with contextlib.suppress(Exception):
                self.fs.rm_file(target)
            raise MirrorError(
                f"{redact_url(self.url)}/{path}: the stored copy does not match sha256 {sha256()}"
            )

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(path))

    def read_sha256(self, path: str, progress: Progress) -> str:
        with self.fs.open(self._path(path), "rb", block_size=_CHUNK) as stream:
            return _hash_stream(stream, progress)

    def read_text(self, path: str) -> str | None:
        try:
            self.fs.invalidate_cache(self._path(path))
            data: bytes = self.fs.cat_file(self._path(path))
        except FileNotFoundError:
            return None
        return data.decode("utf-8")

    def write_text(self, path: str, text: str) -> None:
        self.fs.pipe_file(self._path(path), text.encode("utf-8"))


def open_store(dest: str) -> Store:
    """The :class:`Store` for ``dest``: a path or ``file://`` URL, or any fsspec URL.

    Raises :class:`ConfigurationError` naming the package when fsspec, or the implementation
    of the URL's protocol, is not installed.
    """
    scheme, sep, _ = dest.partition("://")
    if not sep or scheme == "file":
        if sep:
            from urllib.parse import unquote, urlsplit

            return LocalStore(Path(unquote(urlsplit(dest).path)))
        return LocalStore(Path(dest).expanduser().resolve())
    fs, root = filesystem(dest, "mirror")
    return FsspecStore(dest, fs, str(root))


def mirror_path(entry: ModelEntry) -> str:
    """Where ``entry`` lives in a mirror: ``<framework>/<file>`` (the zoo's layout)."""
    return f"{entry.framework.value}/{entry.file}"


def _source(entry: ModelEntry, config: Config) -> str:
    """Where the catalogue says the file comes from (the first source the runtime tries)."""
    if entry.url:
        return redact_url(entry.url)
    if entry.hugging_face_id:
        return f"hf://{entry.hugging_face_id}@{entry.revision or 'main'}/{entry.file}"
    base = config.urls[0] if config.urls else ""
    return f"{redact_url(base.rstrip('/'))}/{mirror_path(entry)}"


def _load_manifest(store: Store) -> dict[str, dict[str, Any]] | None:
    """The manifest's entries by mirror path; None when the mirror has no manifest."""
    text = store.read_text(MANIFEST_NAME)
    if text is None:
        return None
    try:
        data = json.loads(text)
        files = data["files"]
        return {str(item["file"]): dict(item) for item in files}
    except (ValueError, KeyError, TypeError) as exc:
        raise MirrorError(
            f"{redact_url(store.url)}/{MANIFEST_NAME}: not an omnihub mirror manifest ({exc})"
        ) from None


def _write_manifest(store: Store, files: dict[str, dict[str, Any]]) -> None:
    body = {"version": MANIFEST_VERSION, "files": [files[key] for key in sorted(files)]}
    store.write_text(MANIFEST_NAME, json.dumps(body, indent=1, sort_keys=True) + "\n")


def mirror(
    entries: Iterable[ModelEntry],
    dest: str | Store,
    *,
    config: Config | None = None,
    progress: Progress = _ignore,
    on_file: Callable[[MirroredFile], None] | None = None,
) -> list[MirroredFile]:
    """Copy each entry's verified file into the mirror ``dest``; return what happened to each.

    ``progress`` receives byte counts as files are hashed and copied; ``on_file`` each
    result as it is known. A failure of one model (download, upload, verification) is
    recorded and the others go on; the manifest lists every file the mirror holds verified.
    """
    store = dest if not isinstance(dest, str) else open_store(dest)
    cfg = config or resolve()
    manifest = _load_manifest(store)
    missing_manifest = manifest is None
    manifest = manifest or {}
    results = []
    for entry in entries:
        result = _mirror_one(entry, store, cfg, progress)
        if result.status != "failed":
            manifest[result.path] = {
                "name": result.name,
                "file": result.path,
                "sha256": result.sha256,
                "size": result.size,
                "source": result.source,
            }
        results.append(result)
        if on_file is not None:
            on_file(result)
    if missing_manifest or any(r.status != "failed" for r in results):
        _write_manifest(store, manifest)
    return results


def _mirror_one(entry: ModelEntry, store: Store, cfg: Config, progress: Progress) -> MirroredFile:
    name, path = qualified_name(entry), mirror_path(entry)
    try:
        local = fetch(entry, config=cfg)
        size = local.stat().st_size
        sha256 = background(lambda: _local_sha256(entry, local))
        source = _source(entry, cfg)
        if store.holds(path, local, sha256):
            progress(size)
            return MirroredFile(name, path, "present", sha256(), size, source)
        store.put(local, path, sha256, progress)
        return MirroredFile(name, path, "copied", sha256(), size, source)
    except (OmnihubError, OSError) as exc:
        return MirroredFile(name, path, "failed", error=f"{type(exc).__name__}: {exc}")


def _local_sha256(entry: ModelEntry, local: Path) -> str:
    """The sha256 of the cached copy ``fetch`` just returned.

    A pinned entry's file was verified against the catalogue's sha256 by ``fetch`` (and its
    size and mtime still match the record of that verification), so the declared hash is
    used; an unpinned one (trust on first use) is hashed here.
    """
    if entry.sha256:
        return entry.sha256.lower()
    return file_sha256(local)


def check(dest: str | Store, *, progress: Progress = _ignore) -> list[CheckedFile]:
    """Verify every file the mirror's manifest lists: present, right size, right sha256.

    Reads each file back in full; downloads no model. A mirror without a manifest is a
    :class:`MirrorError`.
    """
    store = dest if not isinstance(dest, str) else open_store(dest)
    manifest = _load_manifest(store)
    if manifest is None:
        raise MirrorError(f"{redact_url(store.url)}: no {MANIFEST_NAME} (not an omnihub mirror)")
    return [_check_one(store, item, progress) for _, item in sorted(manifest.items())]


def _check_one(store: Store, item: dict[str, Any], progress: Progress) -> CheckedFile:
    name, path = str(item.get("name")), str(item["file"])
    size = store.size(path)
    if size is None:
        return CheckedFile(name, path, "missing", "not in the mirror")
    if size != item.get("size"):
        return CheckedFile(name, path, "size", f"{size} bytes, manifest says {item.get('size')}")
    found = store.read_sha256(path, progress)
    if found != item.get("sha256"):
        return CheckedFile(name, path, "sha256", f"sha256 {found}, manifest says {item['sha256']}")
    return CheckedFile(name, path, "ok")
