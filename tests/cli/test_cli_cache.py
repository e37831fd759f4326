"""`omnihub cache ls|rm|prune` and `omnihub verify` through a subprocess."""

from __future__ import annotations

import json
import os

import pytest

from .conftest import Zoo


@pytest.fixture
def cached(zoo: Zoo) -> Zoo:
    """The zoo with alpha, beta and gamma downloaded."""
    result = zoo.cli.run("download", "alpha", "beta", "gamma")
    assert result.returncode == 0, result.stderr
    return zoo


def _flip_byte(path: os.PathLike[str]) -> None:
    with open(path, "r+b") as fh:
        first = fh.read(1)
        fh.seek(0)
        fh.write(bytes([first[0] ^ 0xFF]))


def test_cache_ls_empty(zoo: Zoo) -> None:
    result = zoo.cli.run("cache", "ls")
    assert result.returncode == 0
    assert result.stdout == ""
    assert "is empty" in result.stderr
    assert json.loads(zoo.cli.run("cache", "ls", "--json").stdout) == []


def test_cache_ls_lists_names_sizes_and_state(cached: Zoo) -> None:
    result = cached.cli.run("cache", "ls")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:4]]
    assert [row[0] for row in rows] == ["zoo.beta", "zoo.alpha", "zoo.gamma"]  # by path
    assert [row[1] for row in rows] == ["dl4j/beta.zip", "onnx/a/alpha.bin", "samediff/gamma.fb"]
    assert all(row[4] == "ok" for row in rows)
    assert result.stdout.rstrip().endswith(f"3 file(s), 45.2 KiB in {cached.cli.home}")
    items = json.loads(cached.cli.run("cache", "ls", "--json").stdout)
    assert {i["name"]: i["size"] for i in items} == {
        f"zoo.{n}": len(cached.contents[n]) for n in ("alpha", "beta", "gamma")
    }
    alpha = next(i for i in items if i["name"] == "zoo.alpha")
    assert alpha["sha256"] == cached.models["alpha"].sha256
    assert alpha["path"] == str(cached.cached("alpha"))
    assert isinstance(alpha["last_used"], float)


def test_cache_ls_shows_uncatalogued_files(cached: Zoo) -> None:
    stray = cached.cli.home / "onnx" / "stray.onnx"
    stray.write_bytes(b"x")
    result = cached.cli.run("cache", "ls", "--json")
    (item,) = [i for i in json.loads(result.stdout) if i["file"] == "stray.onnx"]
    assert item["name"] is None
    assert item["state"] == "unrecorded"


def test_cache_rm_deletes_file_and_sidecars(cached: Zoo) -> None:
    dry = cached.cli.run("cache", "rm", "--dry-run", "alpha")
    assert dry.returncode == 0, dry.stderr
    assert f"would delete {cached.cached('alpha')}" in dry.stdout
    assert cached.cached("alpha").exists()
    result = cached.cli.run("cache", "rm", "alpha", "zoo.gamma")
    assert result.returncode == 0, result.stderr
    assert "deleted 2 file(s)" in result.stdout
    for name in ("alpha", "gamma"):
        path = cached.cached(name)
        assert not path.exists()
        assert not path.with_name(path.name + ".omnihub.json").exists()
    assert cached.cached("beta").exists()


def test_cache_rm_not_cached_and_unknown(cached: Zoo) -> None:
    result = cached.cli.run("cache", "rm", "delta")
    assert result.returncode == 0
    assert "zoo.delta is not cached" in result.stderr
    unknown = cached.cli.run("cache", "rm", "nope")
    assert unknown.returncode == 3
    assert unknown.stderr.startswith("omnihub: error: ModelNotFoundError")


def test_cache_rm_by_file_for_orphans(cached: Zoo) -> None:
    stray = cached.cli.home / "onnx" / "stray.onnx"
    stray.write_bytes(b"x")
    result = cached.cli.run("cache", "rm", "onnx/stray.onnx")
    assert result.returncode == 0, result.stderr
    assert not stray.exists()


def test_cache_prune_removes_partials_quarantine_and_stale_records(cached: Zoo) -> None:
    home = cached.cli.home
    partial = home / "onnx" / "a" / "other.bin.incomplete"
    partial.write_bytes(b"half")
    corrupt = home / "dl4j" / "beta.zip.corrupt"
    corrupt.write_bytes(b"bad")
    stale = home / "samediff" / "gone.fb.omnihub.json"
    stale.write_text("{}")
    dry = cached.cli.run("cache", "prune", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = {item["path"]: item["reason"] for item in json.loads(dry.stdout)["removed"]}
    assert planned[str(partial)] == "partial download"
    assert planned[str(corrupt)] == "quarantined corrupt copy"
    assert planned[str(stale)] == "record of a missing file"
    assert partial.exists()
    result = cached.cli.run("cache", "prune")
    assert result.returncode == 0, result.stderr
    assert not partial.exists()
    assert not corrupt.exists()
    assert not stale.exists()
    for name in ("alpha", "beta", "gamma"):  # the models themselves stay
        assert cached.cached(name).read_bytes() == cached.contents[name]


def test_cache_prune_orphans_only_when_asked(cached: Zoo) -> None:
    stray = cached.cli.home / "onnx" / "stray.onnx"
    stray.write_bytes(b"x")
    assert cached.cli.run("cache", "prune").returncode == 0
    assert stray.exists()
    result = cached.cli.run("cache", "prune", "--orphans")
    assert result.returncode == 0, result.stderr
    assert "not in any installed catalogue" in result.stdout
    assert not stray.exists()
    assert cached.cached("alpha").exists()


def test_cache_prune_to_a_size_budget_evicts_least_recently_used(cached: Zoo) -> None:
    # use beta last: alpha (36 KB) and gamma are older
    assert cached.cli.run("download", "beta").returncode == 0
    budget = len(cached.contents["beta"])
    result = cached.cli.run("cache", "prune", "--max-size", str(budget))
    assert result.returncode == 0, result.stderr
    remaining = {i["name"] for i in json.loads(cached.cli.run("cache", "ls", "--json").stdout)}
    assert remaining == {"zoo.beta"}


def test_cache_prune_bad_size_is_usage_error(cached: Zoo) -> None:
    result = cached.cli.run("cache", "prune", "--max-size", "lots")
    assert result.returncode == 2
    assert "invalid size 'lots'" in result.stderr


def test_verify_all_ok(cached: Zoo) -> None:
    result = cached.cli.run("verify")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "3 checked, 3 ok, 0 repaired, 0 bad"


def test_verify_reports_corruption_without_repair(cached: Zoo) -> None:
    _flip_byte(cached.cached("alpha"))
    result = cached.cli.run("verify", "--no-repair", "--json")
    assert result.returncode == 4
    report = {row["name"]: row for row in json.loads(result.stdout)}
    assert report["zoo.alpha"]["ok"] is False
    assert "expected " + str(cached.models["alpha"].sha256) in report["zoo.alpha"]["message"]
    assert report["zoo.beta"]["ok"] is True
    assert cached.cached("alpha").exists()  # reported, left alone


def test_verify_repairs_by_downloading_again(cached: Zoo) -> None:
    _flip_byte(cached.cached("alpha"))
    result = cached.cli.run("verify", "alpha")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("repaired  zoo.alpha")
    assert "downloaded again and verified" in result.stdout
    assert cached.cached("alpha").read_bytes() == cached.contents["alpha"]


def test_verify_checks_against_the_catalogue_too(cached: Zoo) -> None:
    # a file replaced with a consistent record but the wrong content for the catalogue
    path = cached.cached("gamma")
    path.write_bytes(b"something else entirely")
    record = path.with_name(path.name + ".omnihub.json")
    record.unlink()  # as if DL4J had written the file: no record
    result = cached.cli.run("verify", "--no-repair", "gamma")
    assert result.returncode == 4
    assert "size 23 bytes, expected 42" in result.stdout  # the catalogue's size


def test_verify_repair_that_fails_stays_bad(cached: Zoo) -> None:
    _flip_byte(cached.cached("beta"))
    (cached.cli.zoo / "dl4j" / "beta.zip").unlink()
    result = cached.cli.run("verify", "beta")
    assert result.returncode == 4
    assert "repair failed: ModelNotFoundError" in result.stdout
    assert "1 bad" in result.stdout


def test_verify_named_but_not_cached(zoo: Zoo) -> None:
    report = zoo.cli.run("verify", "--no-repair", "delta")
    assert report.returncode == 4
    assert "not cached" in report.stdout
    repaired = zoo.cli.run("verify", "delta")
    assert repaired.returncode == 0, repaired.stdout
    assert "not cached; downloaded and verified" in repaired.stdout
    assert zoo.cached("delta").read_bytes() == zoo.contents["delta"]
