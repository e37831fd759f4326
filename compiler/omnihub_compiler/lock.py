"""``spec/omnihub.lock``: the sha256 and size of models whose spec does not declare them.

``omnihub-compile pin spec/`` (:mod:`omnihub_compiler.pin`) downloads such models and records
them here, the way ``pip-compile --generate-hashes`` pins requirements; every compile reads
the file. Rules, applied after validation:

- a value the spec declares always wins; a lock value fills a gap only;
- a lock value that contradicts the spec (sha256 or size), or a lock entry pinned from
  another source than the spec now names, is an error naming both places
  (``spec/<file>.py:<line>`` and ``spec/omnihub.lock:<line>``); re-run ``pin`` to refresh;
- lock entries of models the spec no longer has are ignored (``pin`` drops them).

The file is JSON with one model per line, keys sorted, so it diffs well, is byte-identical
for the same pins, and every error can name its line::

    {
     "models": {
      "samediff.resnet18": {"sha256": "...", "size": 123, "url": "https://..."}
     },
     "version": 1
    }

The model key is ``<package>.<python_name>``; ``url`` is the entry's identity
(:func:`source_of`): its canonical URL, or for a Hub model
``<repository>:<hugging_face_id>/<file_pattern>@<revision>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
from omnihub.catalog import Catalog, ModelEntry

from omnihub_compiler.atomic import replace_file
from omnihub_compiler.errors import SpecError

__all__ = [
    "LOCK_FILENAME",
    "LOCK_VERSION",
    "LockEntry",
    "LockFile",
    "apply_lock",
    "model_key",
    "read_lock",
    "render_lock",
    "source_of",
    "write_lock",
]

#: The lock file's name inside the spec directory.
LOCK_FILENAME = "omnihub.lock"
#: Bumped when the layout changes incompatibly.
LOCK_VERSION = 1

_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


@attrs.frozen
class LockEntry:
    """What ``pin`` measured for one model."""

    sha256: str
    size: int
    url: str
    line: int = attrs.field(default=0, eq=False)  # where it was read (0: not from a file)


@attrs.frozen
class LockFile:
    """A parsed lock file: its display name and entries by model key."""

    display: str
    entries: Mapping[str, LockEntry]

    def location(self, key: str) -> str:
        """``spec/omnihub.lock:<line>`` of ``key``'s entry."""
        entry = self.entries.get(key)
        return f"{self.display}:{entry.line if entry and entry.line else 1}"


def model_key(entry: ModelEntry) -> str:
    """``<package>.<python_name>``: unique per model, stable while its name is."""
    return f"{entry.package}.{entry.python_name}"


def source_of(entry: ModelEntry) -> str:
    """The identity of the bytes a pin measured: the canonical URL or the Hub file."""
    if entry.url is not None:
        return entry.url
    repository = entry.repository or "omnihub"
    where = entry.hugging_face_id or ""
    return f"{repository}:{where}/{entry.file_pattern or entry.file}@{entry.revision or 'main'}"


def _line_of(lines: Sequence[str], key: str) -> int:
    prefix = json.dumps(key, ensure_ascii=False) + ":"
    for number, text in enumerate(lines, start=1):
        if text.lstrip().startswith(prefix):
            return number
    return 1


def read_lock(path: Path, display: str) -> tuple[LockFile | None, list[SpecError]]:
    """Parse ``path`` (absent: no lock, no error); every problem names ``display:<line>``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, []
    except (OSError, UnicodeDecodeError) as exc:
        return None, [SpecError(f"{display}:1", f"cannot read the lock file: {exc}")]
    try:
        data = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", 1)
        return None, [SpecError(f"{display}:{line}", f"not valid JSON: {exc}")]
    if not isinstance(data, dict) or data.get("version") != LOCK_VERSION:
        found = data.get("version") if isinstance(data, dict) else type(data).__name__
        return None, [
            SpecError(
                f"{display}:1", f"expected a lock file of version {LOCK_VERSION}, not {found!r}"
            )
        ]
    models = data.get("models")
    if not isinstance(models, dict):
        return None, [SpecError(f"{display}:1", "'models' must be an object")]
    lines = text.splitlines()
    entries: dict[str, LockEntry] = {}
    errors: list[SpecError] = []
    for key, value in models.items():
        line = _line_of(lines, key)
        where = f"{display}:{line}"
        if not isinstance(value, dict) or set(value) != {"sha256", "size", "url"}:
            errors.append(SpecError(where, f"{key!r} must have exactly sha256, size and url"))
            continue
        sha, size, url = value["sha256"], value["size"], value["url"]
        if not isinstance(sha, str) or not _SHA256.match(sha):
            errors.append(SpecError(where, f"{key!r}: sha256 must be 64 lower-case hex digits"))
        elif not isinstance(size, int) or isinstance(size, bool) or size < 0:
            errors.append(SpecError(where, f"{key!r}: size must be an int >= 0, not {size!r}"))
        elif not isinstance(url, str) or not url:
            errors.append(SpecError(where, f"{key!r}: url must be a non-empty string"))
        else:
            entries[key] = LockEntry(sha, size, url, line)
    return LockFile(display, entries), errors


def apply_lock(
    catalogs: Sequence[Catalog], lock: LockFile | None
) -> tuple[list[Catalog], list[SpecError]]:
    """Fill the gaps of ``catalogs`` from ``lock``; report every spec/lock conflict."""
    if lock is None:
        return list(catalogs), []
    errors: list[SpecError] = []
    result = []
    for catalog in catalogs:
        models = []
        for model in catalog.models:
            key = model_key(model)
            pinned = lock.entries.get(key)
            if pinned is None:
                models.append(model)
                continue
            here = f"{model.source or catalog.package}"
            there = lock.location(key)
            problems = []
            if pinned.url != source_of(model):
                problems.append(
                    f"model {key!r} was pinned from {pinned.url!r} ({there}) but the spec"
                    f" now names {source_of(model)!r}; re-run omnihub-compile pin"
                )
            else:
                if model.sha256 is not None and model.sha256 != pinned.sha256:
                    problems.append(
                        f"model {key!r}: sha256 {model.sha256!r} conflicts with"
                        f" {pinned.sha256!r} in {there}; fix one or re-run omnihub-compile pin"
                    )
                if model.size is not None and model.size != pinned.size:
                    problems.append(
                        f"model {key!r}: size {model.size} conflicts with {pinned.size}"
                        f" in {there}; fix one or re-run omnihub-compile pin"
                    )
            if problems:
                errors.extend(SpecError(here, p) for p in problems)
                models.append(model)
                continue
            models.append(
                attrs.evolve(
                    model,
                    sha256=model.sha256 if model.sha256 is not None else pinned.sha256,
                    size=model.size if model.size is not None else pinned.size,
                )
            )
        result.append(attrs.evolve(catalog, models=tuple(models)))
    return result, errors


def render_lock(entries: Mapping[str, LockEntry]) -> str:
    """The lock file text: sorted keys, one model per line, trailing newline."""
    rows = [
        f"  {json.dumps(key, ensure_ascii=False)}: "
        + json.dumps(
            {"sha256": e.sha256, "size": e.size, "url": e.url},
            ensure_ascii=False,
            sort_keys=True,
        )
        for key, e in sorted(entries.items())
    ]
    body = ",\n".join(rows)
    models = f"{{\n{body}\n }}" if rows else "{}"
    return f'{{\n "models": {models},\n "version": {LOCK_VERSION}\n}}\n'


def write_lock(path: Path, entries: Mapping[str, LockEntry]) -> bool:
    """Atomically write the lock file if its content changes; return whether it did."""
    text = render_lock(entries)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    replace_file(path, text.encode())
    return True
