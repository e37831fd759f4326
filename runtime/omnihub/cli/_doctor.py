"""``omnihub doctor``: the resolved configuration, and whether omnihub can actually work.

Checks, each reported as ok / warning / problem: the configuration resolves (and where
every value came from), the home directory is writable, the installed catalogues parse,
the zoo mirrors and the Hugging Face endpoint answer (unless offline or ``--no-network``),
and which optional loader libraries are installed. Problems make the exit status 4.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import attrs

from omnihub.cli._config import current
from omnihub.cli._main import ExitCode
from omnihub.cli._output import format_size, print_json, print_table
from omnihub.config import Config, describe
from omnihub.errors import OmnihubError

__all__ = ["Check", "cmd_doctor", "run_checks"]

#: Optional libraries and the formats that need them.
_LOADER_LIBRARIES = {
    "numpy": "samediff, dl4j, safetensors, gguf",
    "flatbuffers": "samediff",
    "onnx": "onnx",
    "safetensors": "safetensors",
    "gguf": "gguf",
}
_PROBE_TIMEOUT = 5.0


@attrs.frozen
class Check:
    """One diagnostic: ``status`` is ``"ok"``, ``"warning"`` or ``"problem"``."""

    topic: str
    status: str
    detail: str


def _home_check(home: Path) -> Check:
    existing = home
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return Check("home", "problem", f"{home}: {existing} exists and is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".omnihub-doctor-"):
            pass
    except OSError as exc:
        return Check("home", "problem", f"{home} is not writable: {exc.strerror or exc}")
    free = shutil.disk_usage(existing).free
    created = "" if existing == home else " (will be created on first download)"
    return Check("home", "ok", f"{home} is writable{created}, {format_size(free)} free")


def _cache_check(home: Path) -> Check:
    from omnihub.cache_admin import scan

    try:
        files = scan(home)
    except OSError as exc:
        return Check("cache", "problem", f"cannot read {home}: {exc.strerror or exc}")
    changed = [f for f in files if f.state == "changed"]
    total = sum(f.size for f in files)
    detail = f"{len(files)} file(s), {format_size(total)}"
    if changed:
        detail += f"; {len(changed)} changed since recorded (run `omnihub verify`)"
        return Check("cache", "warning", detail)
    return Check("cache", "ok", detail)


def _catalogue_check() -> Check:
    from omnihub.search import catalog_dirs, find_catalogs

    try:
        catalogs = find_catalogs()
    except OmnihubError as exc:
        return Check("catalogues", "problem", str(exc))
    if not catalogs:
        return Check(
            "catalogues", "warning", "no omnihub_generated catalogue on sys.path (compile spec/)"
        )
    models = sum(len(catalog.models) for _, catalog in catalogs)
    packages = ", ".join(catalog.package for _, catalog in catalogs)
    where = ", ".join(str(d) for d in catalog_dirs())
    return Check("catalogues", "ok", f"{models} model(s) in {packages} ({where})")


def _probe(url: str, config: Config) -> tuple[str, str]:
    """``(status, detail)`` for one base URL: does something answer there?"""
    from omnihub.urls import ambiguity, redact_url

    shown = redact_url(url)
    problem = ambiguity(url)
    if problem:
        return "problem", f"{shown}: {problem}"
    if url.lower().startswith("file:"):
        from urllib.parse import unquote, urlsplit
        from urllib.request import url2pathname

        path = Path(url2pathname(unquote(urlsplit(url).path)))
        if path.is_dir() and os.access(path, os.R_OK | os.X_OK):
            return "ok", f"{shown}: readable directory"
        return "problem", f"{shown}: {path} is not a readable directory"
    import requests

    timeout = (
        min(config.connect_timeout, _PROBE_TIMEOUT),
        min(config.read_timeout, _PROBE_TIMEOUT),
    )
    try:
        response = requests.head(url, timeout=timeout, allow_redirects=True)
    except requests.RequestException as exc:
        return "problem", f"{shown}: unreachable ({type(exc).__name__})"
    # any HTTP answer means the host is reachable; a base URL itself may well be a 404
    return "ok", f"{shown}: reachable (HTTP {response.status_code})"


def _repository_checks(config: Config, *, network: bool) -> list[Check]:
    from omnihub.repositories import registered_repositories
    from omnihub.urls import check_base_url, redact_url

    checks = []
    names = [
        f"{name} (priority {priority}{'' if fallback else ', only when named'})"
        for name, _repo, priority, fallback in registered_repositories()
    ]
    checks.append(Check("repositories", "ok", ", ".join(names)))
    probes: list[tuple[str, str]] = []
    for base in config.urls:
        try:
            probes.append(("zoo mirror", check_base_url(base, allow_http=config.allow_http)))
        except OmnihubError as exc:
            checks.append(Check("zoo mirror", "problem", str(exc)))
    probes.append(("hugging face", config.hf_endpoint))
    for topic, url in probes:
        if not url.lower().startswith("file:") and (config.offline or not network):
            reason = "offline mode" if config.offline else "--no-network"
            checks.append(Check(topic, "ok", f"{redact_url(url)}: not probed ({reason})"))
            continue
        status, detail = _probe(url, config)
        if status != "ok" and topic == "hugging face":
            status = "warning"  # only Hugging Face models need it
        checks.append(Check(topic, status, detail))
    return checks


def _loader_checks() -> list[Check]:
    checks = []
    for library, formats in _LOADER_LIBRARIES.items():
        if importlib.util.find_spec(library) is not None:
            checks.append(Check(f"library {library}", "ok", f"installed (for {formats})"))
        else:
            checks.append(
                Check(f"library {library}", "warning", f"missing: cannot load {formats} models")
            )
    return checks


def run_checks(*, network: bool) -> tuple[Config | None, list[Check]]:
    """Resolve the configuration and run every check, in report order."""
    try:
        config = current()
    except OmnihubError as exc:
        return None, [Check("configuration", "problem", str(exc))]
    checks = [
        _home_check(config.home),
        _cache_check(config.home),
        _catalogue_check(),
        *_repository_checks(config, network=network),
        *_loader_checks(),
    ]
    return config, checks


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the configuration with its sources and the result of every check."""
    config, checks = run_checks(network=not args.no_network)
    settings = describe(config) if config is not None else []
    problems = [c for c in checks if c.status == "problem"]
    if args.json:
        print_json(
            {
                "settings": [attrs.asdict(s) for s in settings],
                "checks": [attrs.asdict(c) for c in checks],
                "ok": not problems,
            }
        )
    else:
        if settings:
            print_table(
                ("SETTING", "VALUE", "SOURCE"), [(s.name, s.value, s.source) for s in settings]
            )
            sys.stdout.write("\n")
        print_table(("CHECK", "STATUS", "DETAIL"), [(c.topic, c.status, c.detail) for c in checks])
        verdict = f"{len(problems)} problem(s) found" if problems else "no problems found"
        sys.stdout.write(f"\n{verdict}\n")
    return ExitCode.PROBLEMS if problems else ExitCode.OK
