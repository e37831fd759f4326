"""`omnihub doctor` through a subprocess: configuration sources and real checks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import Cli, Zoo


def _doctor(cli: Cli, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    result = cli.run("doctor", "--json", *args, env=env)
    return result.returncode, json.loads(result.stdout)


def _checks(report: Any) -> dict[str, dict[str, str]]:
    return {check["topic"]: check for check in report["checks"]}


def test_doctor_healthy_setup(zoo: Zoo) -> None:
    code, report = _doctor(zoo.cli, "--no-network")
    assert code == 0, report
    settings = {s["name"]: s for s in report["settings"]}
    assert settings["home"] == {
        "name": "home",
        "value": str(zoo.cli.home),
        "source": "environment (OMNIHUB_HOME)",
    }
    assert settings["urls"]["source"] == "environment (OMNIHUB_URL)"
    assert settings["retries"]["source"] == "default"
    checks = _checks(report)
    assert checks["home"]["status"] == "ok"
    assert "is writable" in checks["home"]["detail"]
    assert checks["zoo mirror"]["status"] == "ok"
    assert checks["catalogues"]["detail"].startswith("4 model(s) in zoo")
    assert "not probed (--no-network)" in checks["hugging face"]["detail"]
    assert report["ok"] is True


def test_doctor_table_output(zoo: Zoo) -> None:
    result = zoo.cli.run("doctor", "--no-network")
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[0].split() == ["SETTING", "VALUE", "SOURCE"]
    assert "environment (OMNIHUB_HOME)" in result.stdout
    assert result.stdout.rstrip().endswith("no problems found")


def test_doctor_flags_a_missing_zoo_directory(zoo: Zoo) -> None:
    missing = zoo.cli.root / "nowhere"
    code, report = _doctor(zoo.cli, "--no-network", env={"OMNIHUB_URL": missing.as_uri()})
    assert code == 4
    check = _checks(report)["zoo mirror"]
    assert check["status"] == "problem"
    assert str(missing) in check["detail"]


def test_doctor_flags_a_home_that_is_a_file(zoo: Zoo) -> None:
    blocker = zoo.cli.root / "file"
    blocker.write_text("not a directory")
    code, report = _doctor(zoo.cli, "--no-network", env={"OMNIHUB_HOME": str(blocker / "sub")})
    assert code == 4
    assert _checks(report)["home"]["status"] == "problem"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_doctor_flags_a_read_only_home(zoo: Zoo) -> None:
    zoo.cli.home.chmod(0o555)
    try:
        code, report = _doctor(zoo.cli, "--no-network")
    finally:
        zoo.cli.home.chmod(0o755)
    assert code == 4
    assert "not writable" in _checks(report)["home"]["detail"]


def test_doctor_invalid_configuration_is_a_problem(zoo: Zoo) -> None:
    code, report = _doctor(zoo.cli, env={"OMNIHUB_RETRIES": "many"})
    assert code == 4
    (check,) = report["checks"]
    assert check["topic"] == "configuration"
    assert "OMNIHUB_RETRIES='many'" in check["detail"]


def test_doctor_probes_an_http_zoo(zoo: Zoo, http_zoo: str) -> None:
    code, report = _doctor(zoo.cli, env={"OMNIHUB_URL": http_zoo, "HF_ENDPOINT": http_zoo})
    assert code == 0, report
    mirror = _checks(report)["zoo mirror"]
    assert mirror["status"] == "ok"
    assert mirror["detail"].startswith(f"{http_zoo}: reachable (HTTP ")


def test_doctor_reports_an_unreachable_server(zoo: Zoo) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on: bind, never listen
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        code, report = _doctor(zoo.cli, env={"OMNIHUB_URL": url, "HF_ENDPOINT": url})
    assert code == 4
    assert "unreachable" in _checks(report)["zoo mirror"]["detail"]
    assert _checks(report)["hugging face"]["status"] == "warning"  # only HF models need it


def test_doctor_offline_never_probes(zoo: Zoo) -> None:
    code, report = _doctor(
        zoo.cli, env={"OMNIHUB_OFFLINE": "1", "OMNIHUB_URL": "https://example.invalid/zoo"}
    )
    assert code == 0, report
    assert "not probed (offline mode)" in _checks(report)["zoo mirror"]["detail"]


def test_global_options_override_the_environment(zoo: Zoo, tmp_path: Path) -> None:
    other_home = tmp_path / "other-home"
    result = zoo.cli.run("--home", str(other_home), "download", "gamma")
    assert result.returncode == 0, result.stderr
    assert (other_home / "samediff" / "gamma.fb").read_bytes() == zoo.contents["gamma"]
    assert not zoo.cached("gamma").exists()
    listed = json.loads(zoo.cli.run("--home", str(other_home), "cache", "ls", "--json").stdout)
    assert [item["name"] for item in listed] == ["zoo.gamma"]
    result = zoo.cli.run("--home", str(other_home), "--offline", "doctor", "--json")
    settings = {s["name"]: s for s in json.loads(result.stdout)["settings"]}
    assert settings["home"]["source"] == "argument"
    assert settings["home"]["value"] == str(other_home)
    assert settings["offline"] == {"name": "offline", "value": "True", "source": "argument"}


def test_global_offline_option_blocks_downloads(zoo: Zoo) -> None:
    result = zoo.cli.run("--offline", "download", "alpha")
    assert result.returncode == 1
    assert "OfflineError" in result.stderr
