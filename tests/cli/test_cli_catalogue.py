"""`omnihub list` and `omnihub info` through a subprocess, over a catalogue in tmp."""

from __future__ import annotations

import json
import re

import pytest
from omnihub._enums import Format, Framework, ModelType

from .conftest import Cli
from .zoo import entry, write_catalog


@pytest.fixture
def zoo_cli(cli: Cli) -> Cli:
    write_catalog(
        cli.site,
        "samediff",
        [
            entry(
                "resnet18",
                "samediff",
                framework=Framework.SAMEDIFF,
                format=Format.SAMEDIFF,
                model_type=ModelType.SAMEDIFF_PIPELINE,
                size=1536,
                sha256="ab" * 32,
                tags=("vision", "imagenet"),
                documentation="ResNet-18 trained on ImageNet.",
                source="spec/samediff.py:12",
            ),
            entry(
                "lenet",
                "samediff",
                name="LeNet",
                framework=Framework.SAMEDIFF,
                model_type=ModelType.SEQUENTIAL,
            ),
        ],
    )
    write_catalog(
        cli.site,
        "onnx",
        [entry("resnet18", "onnx", format=Format.ONNX, metadata={"opset": 13})],
    )
    return cli


def test_list_prints_a_table_of_every_model(zoo_cli: Cli) -> None:
    result = zoo_cli.run("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "FRAMEWORK", "TYPE", "FORMAT", "SIZE", "TAGS"]
    assert [line.split()[0] for line in lines[1:]] == [
        "onnx.resnet18",
        "samediff.lenet",
        "samediff.resnet18",
    ]
    assert lines[3].split()[1:] == [
        "samediff",
        "SAMEDIFF_PIPELINE",
        "samediff",
        "1.5",
        "KiB",
        "vision,imagenet",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--framework", "samediff"], ["samediff.lenet", "samediff.resnet18"]),
        (["--type", "sequential"], ["samediff.lenet"]),
        (["--format", "onnx"], ["onnx.resnet18"]),
        (["--tag", "vision", "--tag", "imagenet"], ["samediff.resnet18"]),
        (["resnet*"], ["onnx.resnet18", "samediff.resnet18"]),
        (["LeNet"], ["samediff.lenet"]),
        (["--package", "onnx"], ["onnx.resnet18"]),
        (["--tag", "audio"], []),
    ],
)
def test_list_filters_as_json(zoo_cli: Cli, args: list[str], expected: list[str]) -> None:
    result = zoo_cli.run("list", "--json", *args)
    assert result.returncode == 0, result.stderr
    assert [m["qualified_name"] for m in json.loads(result.stdout)] == expected


def test_list_json_carries_every_catalogue_field(zoo_cli: Cli) -> None:
    (model,) = json.loads(zoo_cli.run("list", "--json", "--format", "onnx").stdout)
    assert model["framework"] == "onnx"
    assert model["metadata"] == {"opset": 13}
    assert model["tags"] == []
    assert model["file"] == "resnet18.bin"


def test_bad_filter_value_is_a_usage_error(zoo_cli: Cli) -> None:
    result = zoo_cli.run("list", "--framework", "tensorflow")
    assert result.returncode == 2
    assert "expected one of dl4j, samediff, onnx, got 'tensorflow'" in result.stderr


def test_info_shows_one_model(zoo_cli: Cli) -> None:
    result = zoo_cli.run("info", "samediff.resnet18")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n\n")[0].splitlines()
    fields = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in lines)
    assert fields["name"] == "samediff.resnet18"
    assert fields["spec name"] == "resnet18"
    assert fields["sha256"] == "ab" * 32
    assert fields["size"] == "1536 bytes"
    assert fields["source"] == "spec/samediff.py:12"
    assert "from omnihub_generated.samediff import resnet18" in result.stdout
    assert result.stdout.rstrip().endswith("ResNet-18 trained on ImageNet.")


def test_info_json_by_spec_name(zoo_cli: Cli) -> None:
    result = zoo_cli.run("info", "--json", "LeNet")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["qualified_name"] == "samediff.lenet"


def test_ambiguous_name_is_one_line_exit_3(zoo_cli: Cli) -> None:
    result = zoo_cli.run("info", "resnet18")
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert "onnx.resnet18, samediff.resnet18" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_name_suggests_close_matches(zoo_cli: Cli) -> None:
    result = zoo_cli.run("info", "resnt18")
    assert result.returncode == 3
    assert result.stderr.startswith("omnihub: error: ModelNotFoundError: no installed model")
    assert "did you mean" in result.stderr
    assert result.stderr.count("\n") == 1


def test_no_catalogue_installed_says_so(cli: Cli) -> None:
    result = cli.run("info", "resnet18")
    assert result.returncode == 3
    assert "no omnihub_generated catalogue is installed" in result.stderr


def test_broken_catalogue_is_one_line_naming_the_file(cli: Cli) -> None:
    broken = cli.site / "omnihub_generated" / "bad" / "_catalog.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"schema_version": 1, "models": 3}')
    result = cli.run("list")
    assert result.returncode == 1
    assert "bad/_catalog.json: invalid catalogue" in result.stderr
    assert result.stderr.count("\n") == 1


def test_help_documents_exit_codes(cli: Cli) -> None:
    result = cli.run("--help")
    assert result.returncode == 0
    for line in (
        "0    success",
        "3    not found: NAME matches no installed model",
        "130  interrupted",
    ):
        assert line in result.stdout
    for command in ("list", "info", "download", "verify", "cache", "doctor", "demo"):
        assert command in result.stdout


def test_missing_command_is_a_usage_error(cli: Cli) -> None:
    result = cli.run()
    assert result.returncode == 2
    assert "required" in result.stderr


def test_help_imports_nothing_heavy(cli: Cli) -> None:
    code = (
        "import sys\nfrom omnihub.cli import main\n"
        "try:\n    main(['list', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'attrs', 'cattrs', 'requests', 'tqdm', 'numpy', 'onnx', 'filelock'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli.env, check=True
    ).stdout
    assert out.splitlines()[-1] == "[]"


def test_closed_pipe_is_quiet(cli: Cli) -> None:
    import subprocess
    import sys

    write_catalog(cli.site, "many", [entry(f"model_{i:05d}", "many") for i in range(3000)])
    process = subprocess.Popen(
        [sys.executable, "-m", "omnihub", "list"],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().split()[0] == "NAME"
    process.stdout.close()  # like `omnihub list | head -1`
    assert process.wait(timeout=60) == 0
    assert process.stderr is not None
    assert process.stderr.read() == ""


def test_console_script_runs(zoo_cli: Cli) -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "omnihub"
    if not script.exists():
        pytest.skip(f"the console script is not installed beside {sys.executable}")
    result = subprocess.run(
        [str(script), "list", "--json", "--package", "onnx"],
        capture_output=True,
        text=True,
        env=zoo_cli.env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [m["qualified_name"] for m in json.loads(result.stdout)] == ["onnx.resnet18"]
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    import omnihub

    assert version.stdout.strip() == f"omnihub {omnihub.__version__}"
