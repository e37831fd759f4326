"""Synthetic specs for benchmarks and tests: ``n_models`` spread over ``n_namespaces`` files."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_synthetic_spec"]


def write_synthetic_spec(directory: Path, n_models: int, n_namespaces: int = 1) -> list[Path]:
    """Write ``n_namespaces`` spec files ``ns<k>.py`` declaring ``n_models`` models in total.

    Each file holds its models as a literal table and one loop calling ``ns.samediff_model``,
    the shape a large real zoo would take. Returns the files written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    base, extra = divmod(n_models, n_namespaces)
    per = [base + (1 if k < extra else 0) for k in range(n_namespaces)]
    for k, count in enumerate(per):
        rows = "".join(
            f'    ("model{k}_{i}", "Synthetic model {i} of namespace {k}.\\n\\nUsed for'
            f' benchmarks.", {i * 1000}),\n'
            for i in range(count)
        )
        source = (
            '"""Synthetic spec (omnihub_compiler.synthetic)."""\n\n'
            "from omnihub_compiler.dsl import DEFAULT_OMNIHUB_URL, NamespaceBuilder,"
            " framework_namespace\n\n"
            f"MODELS = [\n{rows}]\n\n\n"
            f'@framework_namespace("Synthetic{k}Models", package="synthetic{k}")\n'
            f"def synthetic{k}(ns: NamespaceBuilder) -> None:\n"
            "    for name, doc, size in MODELS:\n"
            "        ns.samediff_model(\n"
            '            name, doc, f"{DEFAULT_OMNIHUB_URL}/samediff/{name}.fb", size=size\n'
            "        )\n"
        )
        path = directory / f"ns{k}.py"
        path.write_text(source, encoding="utf-8")
        paths.append(path)
    return paths
