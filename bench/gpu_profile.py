"""Where a training step's time goes on the device: each piece timed alone, with the old and
new forms of the pieces that changed side by side.

    python bench/gpu_profile.py [--device cuda] [--output FILE.json]

Workloads (float32, ``784-256-128-64-10`` ReLU + softmax, random data drawn on the host with a
fixed seed; no MNIST needed):

* full batch, m = 60000: ``forward_backward`` and its parts: the forward pass, the head's loss
  and gradient (the one-hot-mask form in ``xpnet/heads.py`` and the fancy-indexing form it
  replaced), the backward pass, and per Linear layer each product, the bias add, the ReLU
  forward and backward, and the bias gradient both as ``dy.sum(axis=0)`` (before) and as
  ``1^T dy`` through BLAS (now);
* batch 128: ``forward_backward``, the Adam step, the batch gather, the whole step, and one
  epoch of ``Trainer.fit`` (Adam).

A batch-128 step is several dozen small kernels, and on a GPU their launches from Python cost
far more than their arithmetic. Recording the step as a CUDA graph would remove that, but CuPy
(14.2) refuses any cuBLAS call while a stream is being captured ("calling cuBLAS API during
stream capture is currently unsupported"), and every layer's products go through cuBLAS: seen
on an H200 on 2026-11-26 (``bench/results/h200-2026-11-26-60b79b1-profile.txt``), so xpnet
records no graphs.

Each figure is the median over 3 rounds of the mean time per call of a loop that runs about
0.2 s, synchronised before the clock is read, so a figure is the cost of back-to-back calls:
GPU time when the GPU is the bottleneck, launch overhead when the host is. Part of
``make gpu-report``; ``--device cpu`` runs the same on the CPU (a dry run of the script).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import xpnet  # noqa: E402
from xpnet.optimizers import make_optimizer  # noqa: E402

SIZES = [784, 256, 128, 64, 10]


def timed(dev, fn, budget=0.2, rounds=3) -> float:
    """Median over ``rounds`` of the mean seconds per call of ``fn`` in a loop of ~``budget``
    seconds (synchronised before each clock read)."""
    fn()
    dev.synchronize()
    t0 = time.perf_counter()
    fn()
    dev.synchronize()
    once = max(time.perf_counter() - t0, 1e-6)
    repeat = int(min(max(budget / once, 3), 5000))
    results = []
    for _ in range(rounds):
        dev.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        dev.synchronize()
        results.append((time.perf_counter() - t0) / repeat)
    return statistics.median(results)


def old_softmax_loss_and_grad(xp, Z, y, out):
    """The head's form before the one-hot mask: fancy-index gather and scatter at (i, y_i)."""
    m = Z.shape[0]
    rows = xp.arange(m)
    shifted = xp.subtract(Z, Z.max(axis=1, keepdims=True), out=out)
    picked = shifted[rows, y]
    xp.exp(shifted, out=shifted)
    sums = shifted.sum(axis=1)
    loss = (xp.log(sums) - picked).mean()
    shifted /= sums[:, None]
    shifted[rows, y] -= 1
    shifted /= m
    return loss, shifted


def full_batch(dev, rows) -> dict:
    xp = dev.xp
    rng = np.random.default_rng(0)
    net = xpnet.MLP(SIZES, device=dev, seed=0)
    X = dev.send(rng.random((rows, SIZES[0]), dtype=np.float32))
    y = dev.send(rng.integers(0, SIZES[-1], rows))
    out = {"forward_backward": timed(dev, lambda: net.forward_backward(X, y)),
           "forward (training)": timed(dev, lambda: net.logits(X, training=True))}
    Z = net.logits(X, training=True).copy()
    work = xp.empty_like(Z)
    head = net.head
    out["head: one-hot mask (now)"] = timed(dev, lambda: head.loss_and_grad(Z, y, out=work))
    out["head: fancy indexing (before)"] = timed(
        dev, lambda: old_softmax_loss_and_grad(xp, Z, y, work))
    new_loss, new_grad = head.loss_and_grad(Z, y, out=xp.empty_like(Z))
    old_loss, old_grad = old_softmax_loss_and_grad(xp, Z, y, xp.empty_like(Z))
    out["head: max |new - old| gradient"] = float(xp.abs(new_grad - old_grad).max())
    out["head: |new - old| loss"] = float(abs(new_loss - old_loss))

    def backward():
        dZ = head.loss_and_grad(net.logits(X, training=True), y)[1]
        net.backward(dZ)

    out["forward + head + backward (by parts)"] = timed(dev, backward)
    gemm = 0.0
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        gemm += one_layer(dev, rng, rows, i, n_in, n_out, out)
    out["GEMM floor (the products above)"] = gemm
    return out


def one_layer(dev, rng, rows, i, n_in, n_out, out) -> float:
    """Time each piece of Linear layer ``i`` (and its ReLU) at ``rows`` rows into ``out``;
    returns the seconds of its matrix products."""
    xp = dev.xp
    gemm = 0.0
    x = dev.send(rng.random((rows, n_in), dtype=np.float32))
    W = dev.send(rng.standard_normal((n_out, n_in)).astype(np.float32))
    b = dev.send(rng.standard_normal(n_out).astype(np.float32))
    dy = dev.send(rng.standard_normal((rows, n_out)).astype(np.float32))
    ybuf, dW, db, dx = (xp.empty((rows, n_out), xp.float32), xp.empty_like(W),
                        xp.empty_like(b), xp.empty((rows, n_in), xp.float32))
    ones = xp.ones(rows, dtype=xp.float32)
    mask = xp.empty((rows, n_out), dtype=bool)
    name = f"layer {i} ({n_in}->{n_out})"
    parts = {
        "x W^T": lambda: xp.matmul(x, W.T, out=ybuf),
        "+ b": lambda: xp.add(ybuf, b, out=ybuf),
        "dW = dy^T x": lambda: xp.matmul(dy.T, x, out=dW),
        "db = dy.sum(axis=0) (before)": lambda: dy.sum(axis=0, out=db),
        "db = 1^T dy (now)": lambda: xp.matmul(ones, dy, out=db),
    }
    if i > 0:
        parts["dx = dy W"] = lambda: xp.matmul(dy, W, out=dx)
    if i < len(SIZES) - 2:
        parts["relu forward"] = lambda: xp.maximum(ybuf, 0, out=ybuf)
        parts["relu backward"] = lambda: xp.multiply(
            dy, xp.greater(ybuf, 0, out=mask), out=dy)
    for label, fn in parts.items():
        out[f"{name}: {label}"] = t = timed(dev, fn)
        if label in ("x W^T", "dW = dy^T x", "dx = dy W"):
            gemm += t
    before = dy.astype(xp.float64).sum(axis=0)
    out[f"{name}: db max |error| sum/gemv vs float64"] = [
        float(xp.abs(dy.sum(axis=0) - before).max()),
        float(xp.abs(xp.matmul(ones, dy) - before).max())]
    return gemm


def mini_batch(dev, rows, batch) -> dict:
    xp = dev.xp
    rng = np.random.default_rng(1)
    X = dev.send(rng.random((rows, SIZES[0]), dtype=np.float32))
    y = dev.send(rng.integers(0, SIZES[-1], rows))
    net = xpnet.MLP(SIZES, device=dev, seed=0)
    opt = make_optimizer("adam", net, 4e-3)
    Xb, yb = xp.empty((batch, SIZES[0]), xp.float32), xp.empty(batch, y.dtype)
    idx = dev.send(rng.permutation(rows)[:batch])
    loss_sum, correct = xp.zeros((), xp.float64), xp.zeros((), xp.int64)

    def eager():
        dev.take_rows(X, idx, Xb)
        dev.take_rows(y, idx, yb)
        loss_sum[...] += net.forward_backward(Xb, yb, correct=correct) * batch
        opt.step()

    out = {"forward_backward": timed(dev, lambda: net.forward_backward(Xb, yb)),
           "adam step": timed(dev, opt.step),
           "gather X and y rows": timed(dev, lambda: (dev.take_rows(X, idx, Xb),
                                                      dev.take_rows(y, idx, yb))),
           "eager step (gather + forward_backward + loss sum + adam)": timed(dev, eager)}
    net_t = xpnet.MLP(SIZES, device=dev, seed=0)
    history = xpnet.Trainer(net_t, optimizer="adam", lr=4e-3, epochs=2, batch_size=batch,
                            seed=0).fit(X, y)
    out["Trainer.fit epoch 2 seconds"] = history.seconds[-1]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--rows", type=int, default=60000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--output", help="write the figures as JSON here")
    args = p.parse_args(argv)
    try:
        dev = xpnet.get_device(args.device)
    except xpnet.backend.DeviceUnavailableError as exc:
        print(f"gpu_profile: {exc}", file=sys.stderr)
        return 1
    with dev.activate():
        results = {"device": str(dev), "rows": args.rows, "batch": args.batch,
                   f"full batch (m={args.rows})": full_batch(dev, args.rows),
                   f"batch {args.batch}": mini_batch(dev, args.rows, args.batch)}
    for section, values in results.items():
        if not isinstance(values, dict):
            print(f"{section}: {values}")
            continue
        print(f"\n{section}")
        for key, value in values.items():
            shown = (f"{value * 1e3:10.3f} ms" if isinstance(value, float) and "seconds" not in key
                     and "|" not in key else f"{value}")
            print(f"  {key:<66} {shown}")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=1) + "\n")
        print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
