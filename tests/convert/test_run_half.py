"""onnxruntime's broken half-precision fusion must not take the process down.

onnxruntime 1.32 segfaults while building a session in which a FLOAT16 ``Transpose`` feeds a
``MatMul`` (its MatmulTransposeFusion rewrite). Converted HALF networks produce exactly that,
so the runner skips the fusion for such models. The check runs in a child process: a
regression kills the child, not the test run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("onnxruntime")

CHILD = textwrap.dedent(
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from omnihub.convert._run import Session

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, [4, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)
    w = numpy_helper.from_array(np.ones((4, 5), np.float16), "w")
    for perm in ([1, 0, 2], [1, 2, 0]):
        nodes = [
            helper.make_node("Transpose", ["x"], ["t"], perm=perm),
            helper.make_node("MatMul", ["t", "w"], ["y"]),
        ]
        graph = helper.make_graph(nodes, "g", [x], [y], [w])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        out = Session(model, "half-test").run_one(np.ones((4, 4, 4), np.float16))
        assert out.dtype == np.float16 and out.shape == (4, 4, 5), (out.dtype, out.shape)
        assert float(out.max()) == 4.0
    print("ok")
    """
)


def test_half_transpose_matmul_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.strip() == "ok"
