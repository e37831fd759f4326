"""Validate recorded definitions and turn them into catalogue entries.

DL4J checks nothing; we check everything and report every problem at once as
``spec/<file>.py:<line>: <message>``:

- documentation is a non-blank string (normalised with :func:`normalize_documentation`);
- ``url`` is an absolute http(s) URL with a host, no whitespace or control characters,
  no query or fragment, whose last path segment is the model file; the file path derived
  from it has no empty, ``.`` or ``..`` segment, no backslash, NUL or encoded ``/``;
- ``sha256`` is 64 hex digits; ``size`` is an int >= 0; ``hugging_face_id`` is
  ``owner/name``; ``factory`` is ``module:callable``; metadata values are finite scalars;
- every model gets a Python name (:mod:`omnihub_compiler.naming`); two models of one
  namespace that land on one name are an error naming both definitions;
- namespace names are identifiers starting with an upper-case letter, packages are
  lower-case identifiers, each package is declared once.
"""

from __future__ import annotations

import inspect
import keyword
import math
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

from omnihub._enums import DEFAULT_OMNIHUB_URL, Format, Framework, ModelType
from omnihub.catalog import Catalog, ModelEntry

from omnihub_compiler.dsl import REPOSITORY_BASE_URLS, ModelDefinition
from omnihub_compiler.errors import SpecError
from omnihub_compiler.loader import LoadedNamespace
from omnihub_compiler.naming import is_valid_python_name, python_name

__all__ = ["MAX_PYTHON_NAME", "normalize_documentation", "validate"]

_SHA256 = re.compile(r"[0-9a-fA-F]{64}\Z")
_HF_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_HF_ID = re.compile(rf"{_HF_PART}/{_HF_PART}\Z")
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_FACTORY = re.compile(rf"{_DOTTED}:{_DOTTED}\Z")
_NAMESPACE = re.compile(r"[A-Z][A-Za-z0-9_]*\Z")
_PACKAGE = re.compile(r"[a-z][a-z0-9_]*\Z")
_BAD_URL_CHAR = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_DEFAULT_FORMAT = {
    Framework.SAMEDIFF: Format.SAMEDIFF,
    Framework.DL4J: Format.DL4J,
    Framework.ONNX: Format.ONNX,
}
#: Longest generated function name (keeps every generated line shape known to the printer).
MAX_PYTHON_NAME = 64
_MAX_PACKAGE = 32
_MAX_NAMESPACE = 40
#: Generated package names the compiler uses itself.
_RESERVED_PACKAGES = frozenset({"pretrained"})


def normalize_documentation(text: str) -> str:
    """PEP 257 clean-up, as ``inspect.cleandoc`` plus no trailing whitespace on any line.

    The generated docstring is written so that ``inspect.getdoc(function)`` returns exactly
    this text on every Python version; normalising twice changes nothing.
    """
    lines = [line.rstrip() for line in inspect.cleandoc(text).split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


class _Checker:
    """Collects the errors of one definition."""

    def __init__(self, definition: ModelDefinition, errors: list[SpecError]) -> None:
        self.definition = definition
        self.errors = errors
        self.ok = True

    def fail(self, message: str) -> None:
        self.ok = False
        self.errors.append(SpecError(self.definition.location, message))

    def text(self, field: str, value: object, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            expected = "a string or None" if optional else "a string"
            self.fail(f"{field} must be {expected}, not {type(value).__name__}")
            return None
        if _SURROGATE.search(value):
            self.fail(f"{field} contains a lone surrogate character")
            return None
        return value

    def enum(self, field: str, value: object, kind: type[Framework | ModelType | Format]) -> object:
        try:
            return kind(value)
        except ValueError:
            names = ", ".join(member.name for member in kind)
            self.fail(f"{field} must be one of {names}, not {value!r}")
            return None


def _file_segments_problem(path: str) -> str | None:
    if not path:
        return "is empty"
    for bad, what in (("\\", "a backslash"), ("\x00", "a NUL character")):
        if bad in path:
            return f"contains {what}"
    if path.startswith("/"):
        return "is absolute"
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            return f"has an empty, '.' or '..' segment ({path!r})"
    return None


def _check_url(check: _Checker, url: str, framework: Framework, repository: str | None) -> str:
    """Validate ``url``; return the catalogue ``file`` it maps to ('' on error)."""
    if _BAD_URL_CHAR.search(url):
        check.fail(f"url {url!r} contains whitespace or a control character")
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        check.fail(f"url {url!r} must be an absolute http(s) URL")
        return ""
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        check.fail(f"url {url!r} must not have a query or fragment")
        return ""
    if re.search(r"%(2[fF]|5[cC]|00)", parts.path):
        check.fail(f"url {url!r} encodes '/', '\\' or NUL in its path")
        return ""
    if not parts.path or parts.path.endswith("/"):
        check.fail(f"url {url!r} must end with the model file name")
        return ""
    if repository in (None, "omnihub"):
        base = f"{DEFAULT_OMNIHUB_URL}/{framework.value}/"
    else:
        base = REPOSITORY_BASE_URLS.get(repository, "")
        if base and not url.startswith(base):
            check.fail(f"url {url!r} is not under repository {repository!r} base {base!r}")
            return ""
    if base and url.startswith(base):
        file = unquote(urlsplit(url[len(base) :]).path)
    else:
        file = unquote(parts.path.rsplit("/", 1)[-1])
    problem = _file_segments_problem(file)
    if problem:
        check.fail(f"url {url!r}: model file {file!r} {problem}")
        return ""
    return file


# One independent check per optional spec field, in field order: splitting it would scatter
# the field list without making any check simpler.
def _check_extras(check: _Checker, d: ModelDefinition) -> dict[str, object]:  # noqa: PLR0912
    out: dict[str, object] = {}
    sha = check.text("sha256", d.sha256, optional=True)
    if sha is not None and not _SHA256.match(sha):
        check.fail(f"sha256 must be 64 hexadecimal digits, not {sha!r}")
    out["sha256"] = sha.lower() if sha is not None else None
    if d.size is not None and (not isinstance(d.size, int) or isinstance(d.size, bool)):
        check.fail(f"size must be an int or None, not {type(d.size).__name__}")
    elif isinstance(d.size, int) and d.size < 0:
        check.fail(f"size must be >= 0, not {d.size}")
    out["size"] = d.size
    out["license"] = check.text("license", d.license, optional=True)
    out["revision"] = check.text("revision", d.revision, optional=True)
    factory = check.text("factory", d.factory, optional=True)
    if factory is not None and not _FACTORY.match(factory):
        check.fail(f"factory must be 'module:callable', not {factory!r}")
    out["factory"] = factory
    if not isinstance(d.pretrained, bool):
        check.fail(f"pretrained must be a bool, not {type(d.pretrained).__name__}")
    tags: list[str] = []
    if isinstance(d.tags, str) or not isinstance(d.tags, Iterable):
        check.fail(f"tags must be a sequence of strings, not {type(d.tags).__name__}")
    else:
        for tag in d.tags:
            value = check.text("each tag", tag)
            if value is not None and not value.strip():
                check.fail("tags must not be blank")
            elif value is not None:
                tags.append(value)
    out["tags"] = tuple(tags)
    metadata: dict[str, str | int | float | bool] = {}
    if d.metadata is not None and not isinstance(d.metadata, Mapping):
        check.fail(f"metadata must be a mapping, not {type(d.metadata).__name__}")
    elif d.metadata is not None:
        for key, value in d.metadata.items():
            if check.text("each metadata key", key) is None:
                continue
            if not isinstance(value, (str, int, float, bool)):
                check.fail(f"metadata[{key!r}] must be str, int, float or bool")
            elif isinstance(value, float) and not math.isfinite(value):
                check.fail(f"metadata[{key!r}] must be finite, not {value!r}")
            elif isinstance(value, str) and _SURROGATE.search(value):
                check.fail(f"metadata[{key!r}] contains a lone surrogate character")
            else:
                metadata[key] = value
    out["metadata"] = metadata
    return out


# The required fields and their cross-checks (kind, framework, url or Hugging Face id), read
# top to bottom in the order a spec declares them.
def _entry(d: ModelDefinition, ns: LoadedNamespace, errors: list[SpecError]) -> ModelEntry | None:  # noqa: PLR0912, PLR0915
    check = _Checker(d, errors)
    name = check.text("name", d.name)
    if name is not None and not name.strip():
        check.fail("name must not be blank")
    doc = check.text("documentation", d.documentation)
    documentation = normalize_documentation(doc) if doc is not None else ""
    if doc is not None and not documentation:
        check.fail(f"documentation of model {name!r} must not be blank")
    framework = check.enum("framework", d.framework, Framework)
    model_type = check.enum("model_type", d.model_type, ModelType)
    fmt = (
        _DEFAULT_FORMAT.get(framework)
        if d.format is None and isinstance(framework, Framework)
        else check.enum("format", d.format, Format)
        if d.format is not None
        else None
    )
    dl4j_types = (None, ModelType.COMP_GRAPH, ModelType.SEQUENTIAL)
    if d.kind == "dl4j_model" and model_type not in dl4j_types:
        check.fail(f"dl4j_model model_type must be COMP_GRAPH or SEQUENTIAL, not {d.model_type!r}")
    repository = check.text("repository", d.repository, optional=True)
    if repository is not None and not repository.strip():
        check.fail("repository must not be blank")
    extras = _check_extras(check, d)
    url: str | None = None
    hf_id: str | None = None
    pattern: str | None = None
    file = ""
    if d.kind in ("gguf_model", "safetensors_model"):
        hf_id = check.text("hugging_face_id", d.hugging_face_id)
        if hf_id is not None and (not _HF_ID.match(hf_id) or ".." in hf_id or "--" in hf_id):
            check.fail(f"hugging_face_id must be 'owner/name', not {hf_id!r}")
        pattern = check.text("file_pattern", d.file_pattern)
        if pattern is not None:
            problem = _file_segments_problem(pattern)
            if problem or any(c.isspace() and c != " " for c in pattern):
                check.fail(f"file_pattern {pattern!r} {problem or 'contains a control character'}")
            elif hf_id is not None:
                file = f"{hf_id}/{pattern}"
    else:
        url = check.text("url", d.url)
        if url is not None and isinstance(framework, Framework):
            file = _check_url(check, url, framework, repository)
    if d.python_name is not None:
        override = check.text("python_name", d.python_name)
        if override is not None and not is_valid_python_name(override):
            check.fail(
                f"python_name {override!r} is not a valid generated name"
                f" (the naming rule gives {python_name(override)!r})"
            )
        py_name = override or ""
    else:
        py_name = python_name(name) if name is not None else ""
    if len(py_name) > MAX_PYTHON_NAME:
        check.fail(
            f"Python name {py_name!r} is longer than {MAX_PYTHON_NAME} characters;"
            " set a shorter python_name="
        )
    if not check.ok:
        return None
    assert isinstance(framework, Framework)
    assert isinstance(model_type, ModelType)
    assert isinstance(fmt, Format)
    assert name is not None
    return ModelEntry(
        name=name,
        python_name=py_name,
        namespace=ns.name,
        package=ns.package,
        framework=framework,
        model_type=model_type,
        format=fmt,
        documentation=documentation,
        file=file,
        url=url,
        pretrained=bool(d.pretrained),
        repository=repository,
        hugging_face_id=hf_id,
        file_pattern=pattern,
        source=d.location,
        **extras,  # type: ignore[arg-type]
    )


def _check_namespace(ns: LoadedNamespace, errors: list[SpecError]) -> bool:
    ok = True
    name_ok = isinstance(ns.name, str) and _NAMESPACE.match(ns.name) is not None
    if not name_ok or len(ns.name) > _MAX_NAMESPACE:
        errors.append(
            SpecError(
                ns.location,
                f"namespace name {ns.name!r} must be an ASCII identifier"
                f" starting with an upper-case letter, at most {_MAX_NAMESPACE} characters",
            )
        )
        ok = False
    if (
        not isinstance(ns.package, str)
        or not _PACKAGE.match(ns.package)
        or keyword.iskeyword(ns.package)
        or keyword.issoftkeyword(ns.package)
        or ns.package in _RESERVED_PACKAGES
        or len(ns.package) > _MAX_PACKAGE
    ):
        errors.append(
            SpecError(
                ns.location,
                f"package {ns.package!r} must be a lower-case identifier"
                f" ([a-z][a-z0-9_]*, at most {_MAX_PACKAGE} characters), not a keyword"
                " and not 'pretrained'",
            )
        )
        ok = False
    return ok


def validate(namespaces: list[LoadedNamespace]) -> tuple[list[Catalog], list[SpecError]]:
    """Validate every namespace; return the catalogues (sorted) and all errors."""
    errors: list[SpecError] = []
    catalogs: list[Catalog] = []
    packages: dict[str, LoadedNamespace] = {}
    files: dict[tuple[str, str], ModelEntry] = {}
    for ns in namespaces:
        if not _check_namespace(ns, errors):
            continue
        first = packages.setdefault(ns.package, ns)
        if first is not ns:
            errors.append(
                SpecError(
                    ns.location,
                    f"package {ns.package!r} is already declared by"
                    f" namespace {first.name!r} at {first.location}",
                )
            )
            continue
        by_name: dict[str, ModelEntry] = {}
        for definition in ns.models:
            entry = _entry(definition, ns, errors)
            if entry is None:
                continue
            other = by_name.get(entry.python_name)
            if other is not None:
                if other.name == entry.name:
                    message = (
                        f"duplicate model name {entry.name!r} (first defined at {other.source})"
                    )
                else:
                    message = (
                        f"model {entry.name!r} and model {other.name!r} ({other.source}) both"
                        f" become Python name {entry.python_name!r}; set python_name= on one"
                    )
                errors.append(SpecError(definition.location, message))
                continue
            by_name[entry.python_name] = entry
            key = (entry.framework.value, entry.file)
            same = files.setdefault(key, entry)
            if same is not entry and (same.sha256, same.size) != (entry.sha256, entry.size):
                errors.append(
                    SpecError(
                        definition.location,
                        f"model {entry.name!r} shares the cache file"
                        f" {entry.framework.value}/{entry.file} with model {same.name!r}"
                        f" ({same.source}) but declares a different sha256 or size",
                    )
                )
        models = tuple(by_name[k] for k in sorted(by_name))
        catalogs.append(Catalog(namespace=ns.name, package=ns.package, models=models))
    catalogs.sort(key=lambda c: c.package)
    return catalogs, errors
