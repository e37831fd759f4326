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

from omnihub import DEFAULT_OMNIHUB_URL, Format, Framework, ModelType
from omnihub.catalog import Catalog, ModelEntry
from omnihub.errors import ConfigurationError
from omnihub.hf_snapshot import is_snapshot
from omnihub.names import MAX_SIZE, check_repository, file_under, last_segment_file
from omnihub.urls import split_name

from omnihub_compiler.dsl import REPOSITORY_BASE_URLS, ModelDefinition
from omnihub_compiler.errors import SpecError
from omnihub_compiler.loader import LoadedNamespace
from omnihub_compiler.naming import is_valid_python_name, python_name

__all__ = [
    "MAX_PYTHON_NAME",
    "namespace_problem",
    "normalize_documentation",
    "package_problem",
    "validate",
]

_SHA256 = re.compile(r"[0-9a-fA-F]{64}\Z")
_HF_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_HF_ID = re.compile(rf"{_HF_PART}/{_HF_PART}\Z")
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_FACTORY = re.compile(rf"{_DOTTED}:{_DOTTED}\Z")
_NAMESPACE = re.compile(r"[A-Z][A-Za-z0-9_]*\Z")
_PACKAGE = re.compile(r"[a-z][a-z0-9_]*\Z")
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
#: Names a namespace class may not take: keywords (``None``/``True``/``False``) and the
#: names the generated modules bind themselves.
_RESERVED_NAMESPACES = frozenset({*keyword.kwlist, "Pretrained", "TYPE_CHECKING"})


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
        """``value`` as a member of ``kind``: a member, or its name or value in any case
        (Kotlin's ``fromString``)."""
        if isinstance(value, kind):
            return value
        if isinstance(value, str):
            for member in kind:
                if value.lower() in (member.name.lower(), member.value.lower()):
                    return member
        names = ", ".join(member.name for member in kind)
        self.fail(f"{field} must be one of {names} (any case), not {value!r}")
        return None


def _name_problem(name: str, what: str) -> str | None:
    """The runtime's file-name rule (:func:`omnihub.urls.split_name`) as a message, or None."""
    try:
        split_name(name, what)
    except ConfigurationError as exc:
        return str(exc)
    return None


def _check_url(check: _Checker, url: str, framework: Framework, repository: str | None) -> str:
    """Validate ``url`` with the runtime's rule (:mod:`omnihub.names`); return its file."""
    try:
        if repository in (None, "omnihub"):
            zoo = f"{DEFAULT_OMNIHUB_URL}/{framework.value}/"
            if url.startswith(zoo):
                return file_under(url, zoo, canonical=True)
        elif repository in REPOSITORY_BASE_URLS:
            return file_under(url, REPOSITORY_BASE_URLS[repository])
        return last_segment_file(url)
    except ConfigurationError as exc:
        check.fail(str(exc))
        return ""


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
    elif isinstance(d.size, int) and not 0 <= d.size <= MAX_SIZE:
        shown = d.size if abs(d.size) < 10**30 else f"a {d.size.bit_length()}-bit integer"
        check.fail(f"size must be between 0 and 2**63 - 1, not {shown}")
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
            text = check.text("each tag", tag)
            if text is not None and not text.strip():
                check.fail("tags must not be blank")
            elif text is not None:
                tags.append(text)
    out["tags"] = tuple(tags)
    metadata: dict[str, str | int | float | bool] = {}
    if d.metadata is not None and not isinstance(d.metadata, Mapping):
        check.fail(f"metadata must be a mapping, not {type(d.metadata).__name__}")
    elif d.metadata is not None:
        items: Iterable[tuple[object, object]] = d.metadata.items()
        for raw_key, value in items:
            key = check.text("each metadata key", raw_key)
            if key is None:
                continue
            if not isinstance(value, (str, int, float, bool)):
                check.fail(f"metadata[{key!r}] must be str, int, float or bool")
            elif isinstance(value, int) and not -MAX_SIZE <= value <= MAX_SIZE:
                check.fail(f"metadata[{key!r}] must fit in 64 bits")
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
    if repository is not None:
        try:
            check_repository(repository)
        except ConfigurationError as exc:
            check.fail(str(exc))
    extras = _check_extras(check, d)
    url: str | None = None
    hf_id: str | None = None
    pattern: str | None = None
    file = ""
    if d.kind in ("gguf_model", "safetensors_model"):
        hf_id = check.text("hugging_face_id", d.hugging_face_id)
        if hf_id is not None and (not _HF_ID.match(hf_id) or ".." in hf_id or "--" in hf_id):
            check.fail(f"hugging_face_id must be 'owner/name', not {hf_id!r}")
        pattern = check.text("file_pattern", d.file_pattern, optional=True)
        if pattern is not None:
            problem = _name_problem(pattern, "file_pattern")
            if problem:
                check.fail(problem)
            elif hf_id is not None:
                file = f"{hf_id}/{pattern}"
        elif hf_id is not None:  # DL4J's null pattern: every file of the repository
            file = hf_id
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
        source=d.source,
        **extras,  # type: ignore[arg-type]
    )


def namespace_problem(name: object) -> str | None:
    """Why ``name`` cannot be a namespace (the generated class name), or None."""
    if (
        not isinstance(name, str)
        or not _NAMESPACE.match(name)
        or len(name) > _MAX_NAMESPACE
        or name in _RESERVED_NAMESPACES
    ):
        return (
            f"namespace name {name!r} must be an ASCII identifier starting with an upper-case"
            f" letter, at most {_MAX_NAMESPACE} characters, not a keyword and not"
            f" {', '.join(sorted(_RESERVED_NAMESPACES - set(keyword.kwlist)))}"
        )
    return None


def package_problem(package: object) -> str | None:
    """Why ``package`` cannot be a generated package, or None.

    The rule is the model-name rule (:func:`omnihub_compiler.naming.is_valid_python_name`:
    no keyword, soft keyword or name the generated code uses, such as ``staticmethod``,
    which would shadow the decorator inside ``class Pretrained``), plus ``pretrained``.
    """
    if (
        not isinstance(package, str)
        or not is_valid_python_name(package)
        or package in _RESERVED_PACKAGES
        or len(package) > _MAX_PACKAGE
    ):
        return (
            f"package {package!r} must be a lower-case identifier"
            f" ([a-z][a-z0-9_]*, at most {_MAX_PACKAGE} characters), not a keyword,"
            " not a name the generated code uses (staticmethod, bool, annotations, ...)"
            " and not 'pretrained'"
        )
    return None


def _check_namespace(ns: LoadedNamespace, errors: list[SpecError]) -> bool:
    problems = [p for p in (namespace_problem(ns.name), package_problem(ns.package)) if p]
    errors.extend(SpecError(ns.location, p) for p in problems)
    return not problems


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
            if is_snapshot(entry):  # each file is verified against the Hub's listing
                continue
            key = (entry.framework.value, entry.file)
            same = files.setdefault(key, entry)
            if same is not entry and (
                entry.sha256 is None or (same.sha256, same.size) != (entry.sha256, entry.size)
            ):
                errors.append(
                    SpecError(
                        definition.location,
                        f"model {entry.name!r} shares the cache file"
                        f" {entry.framework.value}/{entry.file} with model {same.name!r}"
                        f" ({same.source}); allowed only when both declare the same sha256"
                        " (and size)",
                    )
                )
        models = tuple(by_name[k] for k in sorted(by_name))
        catalogs.append(Catalog(namespace=ns.name, package=ns.package, models=models))
    catalogs.sort(key=lambda c: c.package)
    return catalogs, errors
