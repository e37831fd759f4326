"""``omnihub mirror``: into a local directory and into a real S3 protocol endpoint (moto)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnihub.mirror import MANIFEST_NAME, LocalStore, check, mirror, open_store, s3_etag

from tests.cli.zoo import entry, pinned

from .conftest import S3, Cli, Zoo, download_on_nodes


def _json(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.stdout, proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def test_mirror_into_a_directory_writes_the_zoo_layout_and_a_manifest(
    zoo: Zoo, tmp_path: Path
) -> None:
    dest = tmp_path / "mirror"
    done = zoo.cli.run("mirror", str(dest), "--json")
    assert done.returncode == 0, done.stderr
    summary = _json(done)
    assert (summary["copied"], summary["present"], summary["failed"]) == (4, 0, 0)
    for name, model in zoo.models.items():
        assert (dest / model.framework.value / model.file).read_bytes() == zoo.contents[name]
    manifest = json.loads((dest / MANIFEST_NAME).read_text())
    by_file = {item["file"]: item for item in manifest["files"]}
    alpha = by_file["onnx/a/alpha.bin"]
    assert alpha["sha256"] == hashlib.sha256(zoo.contents["alpha"]).hexdigest()
    assert alpha["size"] == len(zoo.contents["alpha"])
    assert alpha["name"] == "zoo.alpha"
    assert alpha["source"] == f"{zoo.cli.zoo.as_uri()}/onnx/a/alpha.bin"
    # the unpinned model is mirrored with the hash of its first (trusted) download
    assert by_file["onnx/delta.bin"]["sha256"] == hashlib.sha256(b"unpinned delta").hexdigest()
    # no temporary files left beside the targets
    assert not [p for p in dest.rglob(".*") if p.name != MANIFEST_NAME]


def test_mirror_is_idempotent_and_repairs_a_damaged_copy(zoo: Zoo, tmp_path: Path) -> None:
    dest = tmp_path / "mirror"
    assert zoo.cli.run("mirror", str(dest), "zoo.a*", "beta").returncode == 0
    assert sorted(p.name for p in dest.rglob("*.*") if p.is_file()) == [
        "alpha.bin",
        "beta.zip",
        MANIFEST_NAME,
    ]
    again = _json(zoo.cli.run("mirror", str(dest), "alpha", "beta", "--json"))
    assert (again["copied"], again["present"]) == (0, 2)
    damaged = dest / "dl4j" / "beta.zip"
    damaged.write_bytes(b"x" * len(zoo.contents["beta"]))  # same size, wrong bytes
    repaired = _json(zoo.cli.run("mirror", str(dest), "alpha", "beta", "--json"))
    assert (repaired["copied"], repaired["present"]) == (1, 1)
    assert damaged.read_bytes() == zoo.contents["beta"]


def test_mirror_check_reports_missing_and_corrupt_files(zoo: Zoo, tmp_path: Path) -> None:
    dest = tmp_path / "mirror"
    assert zoo.cli.run("mirror", dest.as_uri()).returncode == 0
    good = zoo.cli.run("mirror", "--check", str(dest), "--json")
    assert good.returncode == 0, good.stderr
    assert _json(good)["ok"] == 4
    (dest / "samediff" / "gamma.fb").unlink()
    raw = dest / "onnx" / "a" / "alpha.bin"
    raw.write_bytes(raw.read_bytes()[:-1] + b"!")
    bad = zoo.cli.run("mirror", "--check", str(dest))
    assert bad.returncode == 4
    assert "samediff/gamma.fb  missing" in bad.stdout
    assert "onnx/a/alpha.bin  sha256" in bad.stdout
    # --check downloaded nothing: the cache is as the mirror run left it
    assert not list(zoo.cli.home.rglob("*.incomplete"))


def test_mirror_check_of_a_directory_without_manifest_is_one_line(cli: Cli, tmp_path: Path) -> None:
    done = cli.run("mirror", "--check", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert "no omnihub-mirror.json" in done.stderr


def test_mirror_a_failing_model_fails_alone(zoo: Zoo, tmp_path: Path) -> None:
    (zoo.cli.zoo / "samediff" / "gamma.fb").write_bytes(b"tampered")
    dest = tmp_path / "mirror"
    done = zoo.cli.run("mirror", str(dest), "--json")
    assert done.returncode == 1
    summary = _json(done)
    assert (summary["copied"], summary["failed"]) == (3, 1)
    assert not (dest / "samediff" / "gamma.fb").exists()
    manifest = json.loads((dest / MANIFEST_NAME).read_text())
    assert "samediff/gamma.fb" not in {item["file"] for item in manifest["files"]}


def test_mirror_to_a_protocol_without_its_package_names_the_package(cli: Cli) -> None:
    pytest.importorskip("fsspec")
    import importlib.util

    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed: the missing-package path cannot be shown with gs://")
    done = cli.run("mirror", "gs://bucket/zoo")
    assert done.returncode == 1
    assert "gcsfs" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_mirror_into_s3_then_16_nodes_download_from_the_bucket(
    zoo: Zoo, s3: S3, tmp_path: Path
) -> None:
    env = s3.env
    done = zoo.cli.run("mirror", "s3://mirror/zoo", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert _json(done)["copied"] == 4
    again = _json(zoo.cli.run("mirror", "s3://mirror/zoo", "--json", env=env))
    assert (again["copied"], again["present"]) == (0, 4)  # the ETag says the copy is there
    checked = zoo.cli.run("mirror", "--check", "s3://mirror/zoo", "--json", env=env)
    assert checked.returncode == 0, checked.stderr
    assert _json(checked)["ok"] == 4
    # 16 nodes, each with its own home, read the bucket over its S3 HTTP endpoint
    # (path-style http://host/bucket/key) through the ordinary runtime.
    s3.make_public("mirror", "zoo")
    url = f"{s3.endpoint}/mirror/zoo"
    homes = [tmp_path / f"node{n}" for n in range(16)]
    download_on_nodes(zoo, homes, url, ["alpha", "beta", "gamma"], {})


def test_s3_copy_is_verified_by_the_multipart_etag(zoo: Zoo, s3: S3, tmp_path: Path) -> None:
    """A file above s3fs's multipart threshold (2 x 50 MiB) is checked by its '-N' ETag."""
    data = hashlib.sha256(b"seed").digest() * ((100 << 20) // 32 + 1)
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    model = pinned(entry("big", "zoo", file="big.bin"), data)
    zoo_file = zoo.cli.zoo / "onnx" / "big.bin"
    zoo_file.write_bytes(data)
    store = open_store("s3://mirror/zoo")
    from omnihub.config import resolve

    config = resolve(home=zoo.cli.home, urls=(zoo.cli.zoo.as_uri(),))
    (result,) = mirror([model], store, config=config)
    assert result.status == "copied", result.error
    info = s3.filesystem().info("mirror/zoo/onnx/big.bin")  # type: ignore[attr-defined]
    assert info["ETag"].strip('"') == s3_etag(local, 3, len(data))
    assert str(info["ETag"]).endswith('-3"')
    (again,) = mirror([model], store, config=config)
    assert again.status == "present"
    assert [c.status for c in check(store)] == ["ok"]


@settings(max_examples=25, deadline=None)
@given(content=st.binary(max_size=4096))
def test_single_part_etag_is_the_md5(content: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "f"
        path.write_bytes(content)
        assert s3_etag(path, 1, len(content)) == hashlib.md5(content).hexdigest()
        # a part count that does not fit s3fs's part size is "cannot say", never a wrong digest
        assert s3_etag(path, 2, len(content)) is None


def _constant(value: str) -> Callable[[], str]:
    return lambda: value


@settings(max_examples=15, deadline=None)
@given(files=st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.binary(max_size=512)))
def test_local_store_roundtrip_check_is_ok(files: dict[str, bytes]) -> None:
    """Whatever LocalStore.put writes, check() finds exactly that (property)."""
    import tempfile

    from omnihub.mirror import _write_manifest

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        store = LocalStore(root / "m")
        manifest = {}
        for name, content in files.items():
            src = root / f"{name}.src"
            src.write_bytes(content)
            digest = hashlib.sha256(content).hexdigest()
            known = _constant(digest)
            store.put(src, f"onnx/{name}.bin", known, lambda _n: None)
            assert store.holds(f"onnx/{name}.bin", src, known)
            manifest[f"onnx/{name}.bin"] = {
                "name": name,
                "file": f"onnx/{name}.bin",
                "sha256": digest,
                "size": len(content),
            }
        _write_manifest(store, manifest)
        assert all(result.ok for result in check(store))
