"""Inference of an exported model: onnxruntime next to xpnet's own forward pass.

The network of ``bench_mlp.py`` (``784-256-128-64-10``, ReLU, softmax, float32, the same seeded
He weights), exported with ``xpnet.export`` to ONNX, and the same input: the 10000 x 784 float32
test batch of ``bench_mlp.synthetic_data``. pytest-benchmark group ``export_inference[m=10000]``:

================  =====================================================================
``xpnet-numpy``   ``net.forward(X)``: the checked public call (input check with NaN scan,
                  forward, softmax), returning probabilities
``onnxruntime``   ``session.run(None, {"input": X})`` on the exported model (Gemm, Relu,
                  Softmax), CPU execution provider, ``intra_op_num_threads = os.cpu_count()``
================  =====================================================================

Both return the softmax probabilities; the check: they agree to 1e-5 and so do the predicted
labels (a label may differ only where the two top probabilities are within 1e-5). In quick mode
(``make test``) each runs once, with the check. Skips, saying why, without onnx/onnxruntime.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from bench_mlp import N_TEST, SIZES, infer_flops, initial_params, synthetic_data

import xpnet

WORKLOAD = f"export_inference[m={N_TEST}]"
ORT_THREADS = os.cpu_count() or 1

try:
    import onnx  # noqa: F401  (xpnet.export needs it)
    import onnxruntime as ort
except ImportError as exc:
    ort, ORT_WHY = None, f"onnx/onnxruntime is not installed ({exc.name}): pip install -e '.[test]'"
else:
    ORT_WHY = ""

BACKENDS = [pytest.param("xpnet-numpy", id="xpnet-numpy"),
            pytest.param("onnxruntime", id="onnxruntime",
                         marks=[pytest.mark.skip(reason=ORT_WHY)] if ort is None else [])]


def _net():
    net = xpnet.MLP(list(SIZES), dtype="float32", device="cpu", seed=0)
    net.set_params(initial_params())
    return net


def _session(net, tmp_path):
    path = xpnet.export(net, tmp_path / "mlp.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = ORT_THREADS
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_export_inference(benchmark, backend, bench_quick, tmp_path):
    if ort is None:
        pytest.skip(ORT_WHY)  # the value check needs the exported model either way
    _, _, X, _ = synthetic_data(bench_quick)
    net = _net()
    session = _session(net, tmp_path)
    if backend == "xpnet-numpy":
        def fn():
            return net.forward(X)
    else:
        def fn():
            return session.run(None, {"input": X})[0]
    benchmark.group = WORKLOAD
    benchmark.extra_info.update(
        workload=WORKLOAD, backend=backend, kind="impl", device="cpu", rows=N_TEST,
        flops=infer_flops(N_TEST),
        ort_threads=ORT_THREADS if backend == "onnxruntime" else None,
        onnxruntime=ort.__version__)
    mine = np.asarray(fn())
    other = np.asarray(session.run(None, {"input": X})[0] if backend == "xpnet-numpy"
                       else net.forward(X))
    assert mine.shape == (N_TEST, SIZES[-1]) and mine.dtype == np.float32
    np.testing.assert_allclose(mine, other, rtol=1e-5, atol=1e-5)
    labels, other_labels = mine.argmax(axis=1), other.argmax(axis=1)
    top2 = np.sort(other, axis=1)[:, -2:]
    differ = labels != other_labels
    assert np.all(top2[differ, 1] - top2[differ, 0] < 1e-5), f"{differ.sum()} labels differ"
    benchmark(fn)
