"""Reading coefficients copies the weights once (a 100 MB model must not cost 300 MB to load)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from omnihub.loaders._javastream import JavaStream, read_nd4j_array

from tests.loaders.helpers import nd4j_write


def test_view_shares_the_buffer_and_take_is_bounded() -> None:
    data = bytes(range(16))
    stream = JavaStream(data, "t")
    view = stream.view(8, "head")
    assert view.obj is data  # no copy
    assert bytes(view) == data[:8]
    assert stream.take(4, "next") == data[8:12]
    assert stream.remaining == 4


def test_decoded_array_is_native_and_independent_of_the_file_bytes() -> None:
    values = np.arange(12, dtype=np.float32).reshape(1, 12)
    data = nd4j_write(values, "MIXED_DATA_TYPES")
    array = read_nd4j_array(JavaStream(data, "coefficients.bin")).array
    assert array.dtype.isnative
    assert not np.shares_memory(array, np.frombuffer(data, dtype=np.uint8))
    np.testing.assert_array_equal(array.reshape(-1), values.reshape(-1))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_memory_of_a_load_is_two_copies_not_three(tmp_path: Path) -> None:
    """Load a 40 MB network in a child: peak RSS growth stays under 2.5x the weights
    (the zip member's bytes plus the decoded array; it was 3x)."""
    path = tmp_path / "big.zip"
    n = 3200
    layer = {
        "@class": "org.deeplearning4j.nn.conf.layers.DenseLayer",
        "nin": n,
        "nout": n,
        "activationFn": {"@class": "org.nd4j.linalg.activations.impl.ActivationReLU"},
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("configuration.json", json.dumps({"confs": [{"layer": layer}]}))
        archive.writestr(
            "coefficients.bin", nd4j_write(np.ones((1, n * n + n), np.float32), "MIXED_DATA_TYPES")
        )
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child spawned by a
    # large test process would start with the parent's peak.
    child = textwrap.dedent(
        f"""
        import numpy  # imported before the baseline: only the load's own memory counts
        import omnihub.loaders.dl4j as d

        def peak():
            with open("/proc/self/status") as status:
                line = next(x for x in status if x.startswith("VmHWM:"))
            return int(line.split()[1]) * 1024

        base = peak()
        net = d.read_model_serializer({str(path)!r})
        print((peak() - base) / net.params.nbytes, flush=True)
        """
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, cwd=root, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ratio = float(proc.stdout)
    assert ratio < 2.5, ratio
