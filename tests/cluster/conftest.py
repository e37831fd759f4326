"""Fixtures for the cluster tests: the CLI zoo of tests/cli and a moto S3 server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, Zoo, cli, zoo

__all__ = ["S3", "Cli", "Zoo", "cli", "download_on_nodes", "node_env", "s3", "zoo"]

#: Dummy credentials: moto accepts any; they keep botocore from searching the machine's chain.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "omnihub-test",
    "AWS_SECRET_ACCESS_KEY": "omnihub-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3:
    """A running moto S3 server: its endpoint and the environment that points botocore at it."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.env = {**S3_ENV, "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ENDPOINT_URL": endpoint}

    def make_public(self, bucket: str, prefix: str) -> None:
        """Let anonymous clients GET ``bucket/prefix/*`` (the policy docs/cluster.md shows)."""
        import json

        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/{prefix}/*",
                }
            ],
        }
        fs = self.filesystem()
        fs.call_s3("put_bucket_policy", Bucket=bucket, Policy=json.dumps(policy))  # type: ignore[attr-defined]

    def filesystem(self) -> object:
        """A fresh s3fs filesystem on this server."""
        import s3fs

        return s3fs.S3FileSystem(
            key=S3_ENV["AWS_ACCESS_KEY_ID"],
            secret=S3_ENV["AWS_SECRET_ACCESS_KEY"],
            client_kwargs={"endpoint_url": self.endpoint},
            skip_instance_cache=True,
        )


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """moto's standalone S3 server on 127.0.0.1 with a bucket ``mirror``; env points at it."""
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'omnihub[s3]')")
    server_module = pytest.importorskip(
        "moto.server", reason="moto[server] is not installed (pip install 'moto[server]')"
    )
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        running = S3(endpoint)
        # moto keeps its buckets in this process: start every test from an empty server
        import requests

        requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
        for key, value in running.env.items():
            monkeypatch.setenv(key, value)
        fs = running.filesystem()
        fs.mkdir("mirror")  # type: ignore[attr-defined]
        yield running
    finally:
        server.stop()


def node_env(cli: Cli, home: str, url: str) -> dict[str, str]:
    """The environment of one "node": the Cli's, with its own home and OMNIHUB_URL."""
    return {**cli.env, "OMNIHUB_HOME": home, "OMNIHUB_URL": url, "OMNIHUB_DISABLE_PROGRESS": "1"}


def download_on_nodes(
    zoo: Zoo, homes: list[Path], url: str, names: list[str], env: dict[str, str]
) -> None:
    """Run ``omnihub download NAMES`` at once in one process per home ("nodes") reading
    ``url``; each must succeed and hold exactly the zoo's bytes."""
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "omnihub", "download", *names, "--json"],
            env={**node_env(zoo.cli, str(home), url), **env},
            cwd=zoo.cli.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for home in homes
    ]
    for node in nodes:
        out, err = node.communicate(timeout=300)
        assert node.returncode == 0, out + err
        assert len(json.loads(out)["downloaded"]) == len(names)
    for home in homes:
        for name in names:
            model = zoo.models[name]
            assert (home / model.framework.value / model.file).read_bytes() == zoo.contents[name]
