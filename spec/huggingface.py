"""Models on the Hugging Face Hub: DL4J's ``GGUFModel`` and ``SafeTensorsModel``.

Both are SAMEDIFF_PIPELINE models resolved through the ``huggingface`` repository
(``<endpoint>/<repo id>/resolve/<revision>/<file>``); ``file_pattern`` names the file.
"""

from __future__ import annotations

from omnihub_compiler.dsl import NamespaceBuilder, framework_namespace


@framework_namespace("HuggingFaceModels", package="huggingface")
def huggingface(ns: NamespaceBuilder) -> None:
    ns.gguf_model(
        "qwen2_5_0_5b_instruct_q4_k_m",
        documentation="""
            Qwen2.5 0.5B Instruct, 4-bit (Q4_K_M) GGUF quantisation.

            A small chat model (Apache-2.0) for trying GGUF pipelines end to end.
        """,
        hugging_face_id="Qwen/Qwen2.5-0.5B-Instruct-GGUF",
        file_pattern="qwen2.5-0.5b-instruct-q4_k_m.gguf",
        revision="main",
        license="Apache-2.0",
        tags=("llm", "gguf"),
    )
    ns.safetensors_model(
        "all_minilm_l6_v2",
        documentation="""
            all-MiniLM-L6-v2 sentence embeddings (384 dimensions), SafeTensors weights.

            The sentence-transformers model behind many semantic-search demos.
        """,
        hugging_face_id="sentence-transformers/all-MiniLM-L6-v2",
        file_pattern="model.safetensors",
        revision="main",
        license="Apache-2.0",
        tags=("embeddings", "safetensors"),
    )
