"""``s3://`` mirrors as download sources (issue 17 items 1 and 5), against moto's S3 server.

A real S3 protocol endpoint on loopback (``moto.server.ThreadedMotoServer``, the ``s3``
fixture of conftest.py, emptied for every test), read by the ordinary runtime through s3fs
with credentials from botocore's usual chain (the fixture's ``AWS_*`` variables).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnihub import download as download_module
from omnihub.cache import read_record
from omnihub.config import Config, resolve
from omnihub.download import _fsspec, _partial, download
from omnihub.errors import ConfigurationError, DownloadError, IntegrityError, ModelNotFoundError
from omnihub.hub import fetch
from omnihub.layout import partial_path
from omnihub.progress import progress_bar
from omnihub.urls import check_remote_url, is_object_store

from tests.runtime.helpers import entry, payload
from tests.runtime.test_runtime_trust import https_url, pki

from .conftest import S3, Zoo, download_on_nodes

__all__ = ["https_url", "pki"]  # fixtures used by the s3 -> https fallback test

BUCKET = "mirror"
PREFIX = "zoo"
BASE = f"s3://{BUCKET}/{PREFIX}"


@pytest.fixture
def store(s3: S3) -> Iterator[Any]:
    """The s3 server's filesystem; fsspec's cached instances (which keep the endpoint and
    credentials they were made with) are dropped before and after each test."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield s3.filesystem()
    s3fs.S3FileSystem.clear_instance_cache()


def _config(tmp_path: Path, *urls: str, **kw: Any) -> Config:
    kw.setdefault("retries", 2)
    kw.setdefault("backoff", 0.01)
    return resolve(home=tmp_path / "home", urls=urls, disable_progress=True, **kw)


def _key(file: str, framework: str = "samediff") -> str:
    return f"{BUCKET}/{PREFIX}/{framework}/{file}"


def _leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in home.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def test_object_store_urls_are_configured_mirrors_only() -> None:
    assert is_object_store("s3://b/zoo")
    assert is_object_store("gs://b")
    assert is_object_store("az://c")
    assert not is_object_store("https://h/zoo")
    assert not is_object_store("file:///z")
    assert not is_object_store("c://windows/drive")  # a drive letter is not a protocol
    assert check_remote_url("s3://b/zoo/m", allow_http=False, allow_file=True)
    with pytest.raises(ConfigurationError, match="configured mirrors"):
        check_remote_url("s3://b/zoo/m", allow_http=False, allow_file=False)
    with pytest.raises(ConfigurationError, match="unencrypted"):
        check_remote_url("ftp://example.org/zoo/m", allow_http=False, allow_file=True)


def test_happy_path_streams_in_blocks_and_records_the_source(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file spanning several block reads, under a name that needs percent-encoding."""
    monkeypatch.setattr(_fsspec, "BLOCK_SIZE", 1 << 20)
    data = payload(5 * (1 << 20) + 123, seed=1)
    store.pipe_file(_key("dir a/m%1.fb"), data)
    cfg = _config(tmp_path, BASE)
    model = entry("dir a/m%1.fb", data=data)
    path = fetch(model, config=cfg)
    assert path.read_bytes() == data
    record = read_record(path)
    assert record is not None
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert record.url == f"{BASE}/samediff/dir%20a/m%251.fb"
    assert _leftovers(cfg.home) == ["m%1.fb", "m%1.fb.omnihub.json"]
    store.rm_file(_key("dir a/m%1.fb"))
    assert fetch(model, config=cfg) == path  # a cache hit: the bucket is not asked


def test_missing_object_is_not_found_and_nothing_is_cached(store: Any, tmp_path: Path) -> None:
    cfg = _config(tmp_path, BASE)
    with pytest.raises(ModelNotFoundError) as caught:
        fetch(entry("absent.fb", data=b"x"), config=cfg)
    assert f"{BASE}/samediff/absent.fb does not exist" in str(caught.value)
    assert _leftovers(cfg.home) == []


def _half_done(store: Any, cfg: Config, file: str, data: bytes, cut: int) -> Path:
    """What an interrupted download of ``file`` leaves: its first ``cut`` bytes in the partial
    and a resume record holding the object's size and validators as they were then."""
    info = store.info(_key(file))
    partial = partial_path(cfg.home / "samediff" / file)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data[:cut])
    validators = {"ETag": info["ETag"], "Last-Modified": str(info["LastModified"])}
    _partial.save(partial, _partial.Resume.of(f"{BASE}/samediff/{file}", validators, len(data)))
    return partial


def test_resume_continues_at_the_partial_size_when_the_etag_matches(
    store: Any, tmp_path: Path
) -> None:
    data = payload(3 << 20, seed=2)
    store.pipe_file(_key("r.fb"), data)
    cfg = _config(tmp_path, BASE)
    partial = _half_done(store, cfg, "r.fb", data, 1_000_000)
    digest = hashlib.sha256(data).hexdigest()
    done = download(f"{BASE}/samediff/r.fb", partial, config=cfg, allow_file=True,
                    expected_size=len(data), expected_sha256=digest)  # fmt: skip
    assert done.resumed_from == 1_000_000
    assert partial.read_bytes() == data


def test_an_object_replaced_between_attempts_starts_over(
    store: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = payload(3 << 20, seed=3), payload(3 << 20, seed=4)
    store.pipe_file(_key("c.fb"), old)
    cfg = _config(tmp_path, BASE)
    partial = _half_done(store, cfg, "c.fb", old, 2_000_000)
    store.pipe_file(_key("c.fb"), new)  # same size, new ETag
    with caplog.at_level(logging.INFO, logger="omnihub"):
        done = download(f"{BASE}/samediff/c.fb", partial, config=cfg, allow_file=True,
                        expected_sha256=hashlib.sha256(new).hexdigest())  # fmt: skip
    assert done.resumed_from == 0
    assert partial.read_bytes() == new
    assert "changed since the partial download" in caplog.text


def test_an_object_replaced_while_it_is_read_starts_over(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """s3fs reads each block with If-Match: the 412 after the object changed (FileExpired)
    restarts the download, which then gets the new object whole."""
    monkeypatch.setattr(_fsspec, "BLOCK_SIZE", 1 << 20)
    old, new = payload(6 << 20, seed=5), payload(6 << 20, seed=6)
    store.pipe_file(_key("x.fb"), old)
    real = progress_bar  # what omnihub.download calls
    replaced: list[int] = []

    class Replacing:
        """The progress bar of the first attempt: replaces the object after the first chunk."""

        def __init__(self, bar: Any) -> None:
            self.bar = bar

        def update(self, n: int) -> None:
            if not replaced:
                replaced.append(n)
                store.pipe_file(_key("x.fb"), new)
            self.bar.update(n)

        def close(self) -> None:
            self.bar.close()

    def hooked(total: int | None, initial: int, label: str, *, disabled: bool) -> Any:
        bar = real(total, initial, label, disabled=disabled)
        return bar if replaced else Replacing(bar)

    monkeypatch.setattr(download_module, "progress_bar", hooked)
    cfg = _config(tmp_path, BASE)
    with caplog.at_level(logging.INFO, logger="omnihub"):
        path = fetch(entry("x.fb", data=new), config=cfg)
    assert replaced
    assert path.read_bytes() == new
    assert "changed while it was read" in caplog.text


def test_first_use_pin_holds_for_an_object_store(store: Any, tmp_path: Path) -> None:
    store.pipe_file(_key("u.fb"), b"first version")
    cfg = _config(tmp_path, BASE)
    model = entry("u.fb")  # no declared sha256: trusted on first use
    path = fetch(model, config=cfg)
    record = read_record(path)
    assert record is not None
    assert record.origin == "first-use"
    store.pipe_file(_key("u.fb"), b"second version")
    path.unlink()  # lost locally: the download again must match the first-use pin
    with pytest.raises(IntegrityError, match="sha256"):
        fetch(model, config=cfg)
    assert not path.exists()
    # force_download=True is the user's way to accept the new upstream (issue 15 item 4)
    assert fetch(model, config=cfg, force_download=True).read_bytes() == b"second version"


def test_wrong_credentials_are_a_clear_error_and_nothing_is_cached(
    s3: S3, store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto enforces IAM once ``/moto-api/reset-auth`` sets the free action count to 0."""
    import boto3  # type: ignore[import-untyped]
    import requests
    import s3fs
    from moto import settings as moto_settings

    data = payload(100_000, seed=7)
    store.pipe_file(_key("p.fb"), data)
    iam = boto3.client("iam", endpoint_url=s3.endpoint, region_name="us-east-1")
    iam.create_user(UserName="reader")
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    policy = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}  # fmt: skip
    iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(policy))
    # restored by monkeypatch whatever happens (moto keeps this setting per process)
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    requests.post(f"{s3.endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    secret = "not-the-secret-" + "x" * 24
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    cfg = _config(tmp_path, BASE)
    with pytest.raises(DownloadError) as caught:
        fetch(entry("p.fb", data=data), config=cfg)
    message = str(caught.value)
    assert "refused access" in message
    assert f"{BASE}/samediff/p.fb" in message
    assert "AWS_ACCESS_KEY_ID" in message
    assert secret not in message
    assert _leftovers(cfg.home) == []
    # the same download with the user's real keys works: it was the credentials
    s3fs.S3FileSystem.clear_instance_cache()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    assert fetch(entry("p.fb", data=data), config=cfg).read_bytes() == data


def test_mirror_list_falls_back_from_s3_to_https(
    store: Any, tmp_path: Path, pki: Path, https_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``OMNIHUB_URL="s3://... https://..."``: the bucket lacks the file, the https mirror
    (a private CA on loopback) serves it; a file the bucket has never reaches https."""
    from omnihub.download._http import CA_VARIABLES

    from tests.runtime.test_runtime_trust import DATA

    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki / "ca.pem"))
    monkeypatch.setenv("OMNIHUB_URL", f"{BASE} {https_url}")
    monkeypatch.setenv("OMNIHUB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OMNIHUB_DISABLE_PROGRESS", "1")
    fallen = fetch(entry("model.fb", data=DATA))
    assert fallen.read_bytes() == DATA
    record = read_record(fallen)
    assert record is not None
    assert record.url == f"{https_url}/samediff/model.fb"
    other = payload(20_000, seed=8)
    store.pipe_file(_key("other.fb"), other)
    first = fetch(entry("other.fb", data=other))
    record = read_record(first)
    assert record is not None
    assert record.url == f"{BASE}/samediff/other.fb"


def test_a_protocol_without_its_package_names_the_package(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed: the missing-package path cannot be shown with gs://")
    cfg = _config(tmp_path, "gs://bucket/zoo", "file:///never-tried")
    with pytest.raises(ConfigurationError) as caught:
        fetch(entry("m.fb", data=b"x"), config=cfg)
    assert "gcsfs" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_mirror_into_the_bucket_then_16_nodes_read_it_over_s3(
    zoo: Zoo, s3: S3, store: Any, tmp_path: Path
) -> None:
    """``omnihub mirror s3://...``, then 16 processes with separate homes and
    ``OMNIHUB_URL=s3://...`` (credentials from the environment, as on real nodes)."""
    done = zoo.cli.run("mirror", BASE, "--json", env=s3.env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["copied"] == 4
    names = ["alpha", "beta", "gamma", "delta"]
    homes = [tmp_path / f"node{n}" for n in range(16)]
    download_on_nodes(zoo, homes, BASE, names, s3.env)
    for home in homes:
        for name in names:
            model = zoo.models[name]
            record = read_record(home / model.framework.value / model.file)
            assert record is not None
            assert str(record.url).startswith(f"{BASE}/")


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(0, 3 << 20), seed=st.integers(0, 3))
def test_resume_from_any_offset_gives_the_exact_object(
    store: Any, tmp_path_factory: pytest.TempPathFactory, cut: int, seed: int
) -> None:
    """Whatever prefix an interrupted download left, resuming yields exactly the object."""
    data = payload(3 << 20, seed=seed)
    file = f"h{seed}.fb"
    if not store.exists(_key(file)):
        store.pipe_file(_key(file), data)
    cfg = _config(tmp_path_factory.mktemp("resume"), BASE)
    partial = _half_done(store, cfg, file, data, cut)
    done = download(f"{BASE}/samediff/{file}", partial, config=cfg, allow_file=True,
                    expected_sha256=hashlib.sha256(data).hexdigest())  # fmt: skip
    assert partial.read_bytes() == data
    assert done.resumed_from == (cut if cut else 0)


def test_an_unreachable_store_is_a_download_error_and_the_next_mirror_serves(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store nobody answers for (a closed port) fails that mirror only: the file:// mirror
    after it in OMNIHUB_URL serves the model."""
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    data = payload(10_000, seed=9)
    local = tmp_path / "zoo" / "samediff" / "n.fb"
    local.parent.mkdir(parents=True)
    local.write_bytes(data)
    cfg = _config(tmp_path, BASE, (tmp_path / "zoo").as_uri())
    path = fetch(entry("n.fb", data=data), config=cfg)
    assert path.read_bytes() == data
    record = read_record(path)
    assert record is not None
    assert record.url == f"{(tmp_path / 'zoo').as_uri()}/samediff/n.fb"
    with pytest.raises(DownloadError, match=f"cannot read {BASE}/samediff/n.fb"):
        fetch(entry("n.fb", data=data), config=_config(tmp_path / "other", BASE))
