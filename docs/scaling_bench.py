"""The measurements of docs/scaling.md: seconds per epoch of the default recipe on MNIST, in one
process or in N MPI ranks, and the gradient all-reduce's share of each step.

    OPENBLAS_NUM_THREADS=2 python docs/scaling_bench.py                     # 1 process, 2 threads
    OPENBLAS_NUM_THREADS=1 mpiexec -n 2 python docs/scaling_bench.py        # 2 ranks x 1 thread
    mpiexec -n 2 python docs/scaling_bench.py --allreduce 242762 6113930    # all-reduce alone
    python docs/scaling_bench.py --model                                    # the paper model

Prints one JSON line (rank 0). Needs XPNET_DATA_DIR (or the cached MNIST files).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

import xpnet
from xpnet import distributed


def train(args):
    comm = distributed.init() if "PMI_RANK" in os.environ or "OMPI_COMM_WORLD_RANK" in \
        os.environ else None
    data = xpnet.load_mnist(progress=False)
    X = data.X_train.reshape(len(data.X_train), -1).astype(np.float32) / 255.0
    y = data.y_train
    net = xpnet.MLP(args.layers, dtype="float32", device="cpu", seed=0)
    trainer = xpnet.Trainer(net, optimizer="adam", epochs=args.epochs,
                            batch_size=args.batch_size, seed=0, comm=comm)
    trainer.fit(X, y)
    seconds = trainer.history.seconds[1:] or trainer.history.seconds  # the first warms up
    out = {"ranks": 1 if comm is None else comm.size,
           "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
           "batch_size": args.batch_size, "layers": args.layers,
           "epoch_seconds": [round(s, 3) for s in trainer.history.seconds],
           "median_epoch_seconds": round(statistics.median(seconds), 3),
           "final_loss": round(trainer.history.loss[-1], 4)}
    if trainer.parallel is not None:
        stats = trainer.parallel.stats
        steps = stats["steps"]
        total = sum(trainer.history.seconds)
        out["allreduce_ms_per_step"] = round(1e3 * stats["allreduce_seconds"] / steps, 3)
        out["step_ms"] = round(1e3 * total / steps, 3)
        out["allreduce_share"] = round(stats["allreduce_seconds"] / total, 3)
    if comm is None or comm.rank == 0:
        print(json.dumps(out), flush=True)


def allreduce(args):
    """Median time of an in-place all-reduce (sum) of float32 buffers of the given sizes."""
    comm = distributed.init()
    out = {"ranks": comm.size, "allreduce_ms": {}}
    for n in args.allreduce:
        buf = np.ones(n, dtype=np.float32)
        times = []
        for _ in range(args.repeats):
            comm.barrier()
            t0 = time.perf_counter()
            comm.allreduce(buf)
            times.append(time.perf_counter() - t0)
        out["allreduce_ms"][n] = round(1e3 * statistics.median(times), 3)
    if comm.rank == 0:
        print(json.dumps(out), flush=True)


# ---------------------------------------------------------------------- the model on paper
# Published figures (docs/scaling.md cites them): H100 SXM FP32 66.9 TFLOP/s peak; links of
# 25, 100 and 400 Gb/s; PCIe Gen5 x16 64 GB/s per direction. The efficiency and the per-step
# latencies below are assumptions, stated in docs/scaling.md.
PEAK_FLOPS = 66.9e12
EFFICIENCY = 0.5  # of FP32 peak reached by the MLP's GEMMs at large batch (assumed)
LINKS = {"25 Gb/s Ethernet": (25e9 / 8, 15e-6), "100 Gb/s (EDR IB / RoCE)": (100e9 / 8, 3e-6),
         "400 Gb/s (NDR IB)": (400e9 / 8, 2e-6)}
PCIE = 64e9  # bytes/s per direction, for the host-buffer copies of the MPI path


def parameters(layers):
    return sum(a * b + b for a, b in zip(layers[:-1], layers[1:]))


def model(rank_counts=(2, 8, 64)):
    """Per-rank batch below which the ring all-reduce of the float32 gradient takes longer than
    the backward pass (so it can no longer hide behind it, even when overlapped)."""
    rows = []
    for name, layers in (("MLP 784-256-128-64-10", [784, 256, 128, 64, 10]),
                         ("10x wider 784-2560-1280-640-10", [784, 2560, 1280, 640, 10])):
        p = parameters(layers)
        nbytes = 4 * p
        backward_per_sample = 4 * p / (EFFICIENCY * PEAK_FLOPS)  # dW and dX, 2 FLOP per MAC
        for link, (bandwidth, alpha) in LINKS.items():
            for n in rank_counts:
                comm = 2 * (n - 1) / n * nbytes / bandwidth + 2 * (n - 1) * alpha
                host = 2 * nbytes / PCIE  # device -> host -> device, the MPI path today
                rows.append({"model": name, "params": p, "link": link, "ranks": n,
                             "allreduce_ms": round(1e3 * comm, 3),
                             "host_copies_ms": round(1e3 * host, 3),
                             "backward_us_per_sample": round(1e6 * backward_per_sample, 4),
                             "min_batch_device_buffers": int(round(comm / backward_per_sample)),
                             "min_batch_host_buffers": int(round((comm + host)
                                                                 / backward_per_sample))})
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--layers", type=lambda s: [int(v) for v in s.split(",")],
                   default=[784, 256, 128, 64, 10])
    p.add_argument("--allreduce", type=int, nargs="*", help="time all-reduces of these sizes")
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--model", action="store_true", help="print the scaling model's table")
    a = p.parse_args()
    if a.model:
        for row in model():
            print(json.dumps(row))
    else:
        allreduce(a) if a.allreduce else train(a)
