# ruff: noqa: E501 -- Kotlin definitions are kept one line each, as DL4J writes them
"""Kotlin definitions translate line by line (issue 16 items 7 and 11)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from omnihub import Format, Framework, ModelType
from omnihub_compiler.compile import build_catalogs
from omnihub_compiler.dsl import ModelDefinition, NamespaceBuilder
from omnihub_compiler.errors import CompileError
from omnihub_compiler.naming import python_name

HEAD = (
    "from omnihub_compiler.dsl import DEFAULT_OMNIHUB_URL, Framework, ModelType,"
    " NamespaceBuilder, framework_namespace\n"
)

# DL4J's SameDiffModels.kt, Dl4jModels.kt and two LLM catalogue entries, one Python line each
KOTLIN_TRANSLATED = HEAD + textwrap.dedent(
    """
    @framework_namespace("SameDiffModels", package="samediff")
    def samediff(ns: NamespaceBuilder) -> None:
        ns.samediff_model("ageGooglenet", "This model is converted from the onnx model age_googlenet.onnx at the onnx model zoo at: https://github.com/onnx/models", f"{DEFAULT_OMNIHUB_URL}/samediff/age_googlenet.fb", True)
        ns.samediff_model("resnet18", "This model is converted from pytorch's torchvision resnet18 model via onnx. For more information see: https://pytorch.org/vision/stable/models.html", f"{DEFAULT_OMNIHUB_URL}/samediff/resnet18.fb", True)

    @framework_namespace("DL4JModels")
    def dl4j(ns: NamespaceBuilder) -> None:
        ns.dl4j_model("vgg19noTop", "This model is converted from keras applications." + "Keras applications vgg19 weights can be created with:", f"{DEFAULT_OMNIHUB_URL}/dl4j/vgg19_weights_tf_dim_ordering_tf_kernels_notop.zip", True, ModelType.COMP_GRAPH)
        ns.model("mnist", "An ONNX model.", "https://h.example/mnist.onnx", True, Framework.ONNX, ModelType.COMP_GRAPH, repository="url")

    @framework_namespace("LLMModels", package="llm")
    def llm(ns: NamespaceBuilder) -> None:
        ns.gguf_model("qwen2.5-7b", "Qwen 2.5 7B base model", "Qwen/Qwen2.5-7B", "*.gguf", True)
        ns.safetensors_model("phi-3.5-mini", "Microsoft Phi 3.5 Mini Instruct model", "microsoft/Phi-3.5-mini-instruct", "model.safetensors", True)
    """
)


def write(tmp_path: Path, text: str) -> Path:
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir(exist_ok=True)
    (spec_dir / "s.py").write_text(text)
    return spec_dir


def test_kotlin_definitions_translate_line_by_line(tmp_path: Path) -> None:
    catalogs = {c.namespace: c for c in build_catalogs(write(tmp_path, KOTLIN_TRANSLATED))}
    assert set(catalogs) == {"SameDiffModels", "DL4JModels", "LLMModels"}
    assert catalogs["DL4JModels"].package == "dl4_j_models"  # the naming rule on the name
    dl4j = {m.python_name: m for m in catalogs["DL4JModels"].models}
    assert dl4j["vgg19no_top"].model_type is ModelType.COMP_GRAPH
    assert dl4j["vgg19no_top"].file == "vgg19_weights_tf_dim_ordering_tf_kernels_notop.zip"
    assert (dl4j["mnist"].framework, dl4j["mnist"].format) == (Framework.ONNX, Format.ONNX)
    samediff = [m.python_name for m in catalogs["SameDiffModels"].models]
    assert samediff == ["age_googlenet", "resnet18"]
    llm = {m.python_name: m for m in catalogs["LLMModels"].models}
    assert llm["qwen2_5_7b"].file_pattern == "*.gguf"
    assert llm["qwen2_5_7b"].repository == "huggingface"
    assert llm["phi_3_5_mini"].format is Format.SAFETENSORS
    assert llm["phi_3_5_mini"].source == "spec/s.py:16"


@pytest.mark.parametrize(
    ("call", "model_type", "framework"),
    [
        ('ns.dl4j_model("a", "d", U + "/dl4j/a.zip", True, "sequential")', "SEQUENTIAL", "dl4j"),
        (
            'ns.dl4j_model("a", "d", U + "/dl4j/a.zip", model_type="Comp_Graph")',
            "COMP_GRAPH",
            "dl4j",
        ),
        ('ns.model("a", "d", "https://h/a.onnx", True, "ONNX")', "COMP_GRAPH", "onnx"),
        (
            'ns.model("a", "d", "https://h/a.fb", framework="SameDiff", model_type="samediff_pipeline")',
            "SAMEDIFF_PIPELINE",
            "samediff",
        ),
    ],
)
def test_enum_strings_are_case_insensitive(
    tmp_path: Path, call: str, model_type: str, framework: str
) -> None:
    text = (
        HEAD
        + "from omnihub_compiler.dsl import DEFAULT_OMNIHUB_URL as U\n"
        + '@framework_namespace("M", package="m")\n'
        + f"def m(ns: NamespaceBuilder) -> None:\n    {call}\n"
    )
    ((entry,),) = [c.models for c in build_catalogs(write(tmp_path, text))]
    assert (entry.model_type.value, entry.framework.value) == (model_type, framework)


def test_the_returned_definition_takes_a_block_style_follow_up(tmp_path: Path) -> None:
    text = HEAD + textwrap.dedent(
        """
        @framework_namespace("M", package="m")
        def m(ns: NamespaceBuilder) -> None:
            model = ns.samediff_model("a", "d", f"{DEFAULT_OMNIHUB_URL}/samediff/a.fb")
            model.tags = ("vision",)
            model.metadata = {"opset": 12}
            model.license = "Apache-2.0"
        """
    )
    ((entry,),) = [c.models for c in build_catalogs(write(tmp_path, text))]
    assert (entry.tags, entry.metadata, entry.license) == (("vision",), {"opset": 12}, "Apache-2.0")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            'ns.model("a", "d", "https://h/a.onnx")',
            "TypeError: model() missing required argument: 'framework'",
        ),
        (
            'ns.dl4j_model("a", "d", "https://h/a.zip")',
            "TypeError: dl4j_model() missing required argument: 'model_type'",
        ),
        (
            'ns.samediff_model("a", "d", "https://h/a.fb", shaa256="x")',
            "TypeError: samediff_model() got unexpected keyword argument(s): ['shaa256']",
        ),
        (
            'ns.dl4j_model("a", "d", "https://h/a.zip", True, "graph")',
            "model_type must be one of COMP_GRAPH, SEQUENTIAL, SAMEDIFF_PIPELINE (any case), not 'graph'",
        ),
    ],
)
def test_kotlin_shaped_mistakes_are_one_line(tmp_path: Path, call: str, message: str) -> None:
    text = (
        HEAD
        + '@framework_namespace("M", package="m")\n'
        + f"def m(ns: NamespaceBuilder) -> None:\n    {call}\n"
    )
    with pytest.raises(CompileError) as info:
        build_catalogs(write(tmp_path, text))
    assert info.value.lines == [f"spec/s.py:4: {message}"]


def test_every_builder_goes_through_one_implementation() -> None:
    """Item 11: the five builders record through ``_add`` and return what they recorded."""
    from omnihub_compiler.dsl import framework_namespace

    namespace = framework_namespace("M")(lambda ns: None)
    assert namespace.package == "m"
    builder = NamespaceBuilder(namespace, {})
    made = [
        builder.samediff_model("a", "d", "https://h/a.fb"),
        builder.dl4j_model("b", "d", "https://h/b.zip", True, ModelType.SEQUENTIAL),
        builder.model("c", "d", "https://h/c.onnx", True, Framework.ONNX),
        builder.gguf_model("d", "d", "o/n"),
        builder.safetensors_model("e", "d", "o/n", None),
    ]
    assert builder.models == made
    assert all(isinstance(m, ModelDefinition) for m in made)
    assert [m.kind for m in made] == [
        "samediff_model",
        "dl4j_model",
        "model",
        "gguf_model",
        "safetensors_model",
    ]
    assert made[3].file_pattern == "*.gguf"
    assert made[4].file_pattern is None
    assert made[3].repository == made[4].repository == "huggingface"


def _dsl_table() -> list[list[str]]:
    """The rows of docs/dsl.md's "real DL4J definitions" table, cells without backticks."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "dsl.md").read_text()
    section = text.split("## The real DL4J definitions, line by line", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip().strip("`") for cell in row.strip("|").split(" | ")] for row in rows]


def test_the_docs_kotlin_table_compiles_to_its_python_functions(tmp_path: Path) -> None:
    """Item 9: the table's Python column is valid DSL and gives its last column."""
    rows = _dsl_table()
    assert len(rows) == 10  # DL4J's three zoo models and its seven LLM catalogue entries
    calls = "".join(f"    {python}\n" for _, _, python, _ in rows)
    text = (
        HEAD
        + "U = DEFAULT_OMNIHUB_URL\n"
        + 'doc = "Documentation."\n'
        + '@framework_namespace("Table", package="table")\n'
        + f"def table(ns: NamespaceBuilder) -> None:\n{calls}"
    )
    (catalog,) = build_catalogs(write(tmp_path, text))
    by_line = {int(str(m.source).rsplit(":", 1)[1]): m.python_name for m in catalog.models}
    assert [by_line[6 + i] for i in range(len(rows))] == [row[3] for row in rows]
    for kotlin, java, _, function in rows:
        declared = kotlin.split('"')[1]
        assert python_name(declared) == function
        assert declared in java
