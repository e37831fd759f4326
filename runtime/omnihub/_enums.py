"""The vocabulary shared by spec, compiler, catalogue and runtime.

These mirror DL4J omnihub's Kotlin enums (``Framework``, ``ModelType``) and add the file
``Format`` a loader is chosen by. They are ``str`` enums so that the catalogue JSON holds
plain strings and comparisons with strings read from the environment just work.
"""

from __future__ import annotations

import enum

__all__ = ["DEFAULT_OMNIHUB_URL", "Format", "Framework", "ModelType"]

#: The zoo DL4J's OmniHubUtils downloads from when ``OMNIHUB_URL`` is unset.
DEFAULT_OMNIHUB_URL = "https://media.githubusercontent.com/media/KonduitAI/omnihub-zoo/main"


class Framework(str, enum.Enum):
    """The framework a model file belongs to; its value is the cache sub-directory."""

    DL4J = "dl4j"
    SAMEDIFF = "samediff"
    ONNX = "onnx"

    def __str__(self) -> str:
        return self.value


class ModelType(str, enum.Enum):
    """DL4J's ``ModelType``: how the file is turned into a model object."""

    COMP_GRAPH = "COMP_GRAPH"
    SEQUENTIAL = "SEQUENTIAL"
    SAMEDIFF_PIPELINE = "SAMEDIFF_PIPELINE"

    def __str__(self) -> str:
        return self.value


class Format(str, enum.Enum):
    """The on-disk format of a model file, which selects its loader."""

    SAMEDIFF = "samediff"  # FlatBuffers FlatGraph (.fb), or the .sdnb/.sdz containers
    DL4J = "dl4j"  # ModelSerializer zip
    ONNX = "onnx"  # .onnx protobuf
    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    RAW = "raw"  # anything else: the loader returns the verified file itself

    def __str__(self) -> str:
        return self.value
