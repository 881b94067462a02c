"""Peak GPU memory of one full-batch training step: ``net.forward_backward`` on 60000x784 float32
and an Adam update, through CuPy's default memory pool.

    python bench/gpu_memory.py [--rows 60000] [--layers 784,256,128,64,10] [--output FILE]

The data are random (no MNIST needed), drawn on the device. A :class:`cupy.cuda.MemoryHook`
follows every allocation from and release to the pool during the step, so the high-water marks
are exact, not sampled:

* ``peak_used``: bytes held by live arrays (the pool's ``used_bytes()``) at their highest;
* ``peak_total``: bytes the pool had reserved from the driver (``total_bytes()``) at their
  highest (it only grows during a step: freed blocks are cached, not returned);
* the driver's view before and after (``cudaMemGetInfo``), which also sees what cuBLAS and the
  CUDA context take outside the pool.

Step 1 allocates what later steps reuse (layer work buffers, Adam's moments, the scratch
buffer); step 2 is the steady state. Prints a summary and writes JSON (``--output``). Takes a
few seconds; part of ``make gpu-report``. Needs a usable CUDA GPU: without one it says so in one
line and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

GIB = 2**30


def _parse_layers(text):
    return [int(v) for v in text.split(",")]


def measure(rows, layers, dtype="float32", optimizer="adam", steps=2) -> dict:
    import cupy

    import xpnet
    from xpnet.optimizers import make_optimizer

    dev = xpnet.get_device("cuda")
    xp = dev.xp
    pool = xp.get_default_memory_pool()

    class Peak(cupy.cuda.MemoryHook):
        name = "xpnet_peak"

        def __init__(self):
            self.used = self.peak_used = pool.used_bytes()
            self.total = self.peak_total = pool.total_bytes()

        def malloc_postprocess(self, **kw):
            self.used += kw["mem_size"]
            self.peak_used = max(self.peak_used, self.used)

        def free_postprocess(self, **kw):
            self.used -= kw["mem_size"]

        def alloc_postprocess(self, **kw):
            self.total += kw["mem_size"]
            self.peak_total = max(self.peak_total, self.total)

    def driver_used():
        free, total = xp.cuda.Device(0).mem_info
        return total - free

    with dev.activate():
        rng = xp.random.default_rng(0)
        X = rng.random((rows, layers[0]), dtype=np.dtype(dtype))
        y = rng.integers(0, layers[-1], size=rows)
        net = xpnet.MLP(layers, dtype=dtype, device=dev, seed=0)
        opt = make_optimizer(optimizer, net)
        dev.synchronize()
        result = {
            "rows": rows, "layers": layers, "dtype": dtype, "optimizer": optimizer,
            "data_bytes": int(X.nbytes + y.nbytes),
            "parameter_bytes": int(net.flat.data.nbytes),
            "gradient_bytes": int(net.flat.grad.nbytes),
            "pool_used_before": int(pool.used_bytes()),
            "pool_total_before": int(pool.total_bytes()),
            "driver_used_before": int(driver_used()),
            "driver_total": int(xp.cuda.Device(0).mem_info[1]),
            "steps": [],
        }
        for step in range(1, steps + 1):
            t0 = time.perf_counter()
            with Peak() as peak:
                loss = net.forward_backward(X, y)
                opt.step()
                dev.synchronize()
            result["steps"].append({
                "step": step, "loss": float(loss), "seconds": time.perf_counter() - t0,
                "peak_used_bytes": int(peak.peak_used), "peak_total_bytes": int(peak.peak_total),
                "pool_used_after": int(pool.used_bytes()),
                "pool_total_after": int(pool.total_bytes()),
                "driver_used_after": int(driver_used()),
            })
    return result


def summary(r) -> str:
    head = (f"full-batch step, {r['rows']}x{r['layers'][0]} {r['dtype']}, "
            f"{'-'.join(map(str, r['layers']))}, {r['optimizer']}: data "
            f"{r['data_bytes'] / GIB:.3f} GiB, parameters {r['parameter_bytes'] / 2**20:.2f} MiB")
    lines = [head]
    for s in r["steps"]:
        lines.append(
            f"  step {s['step']}: peak pool used {s['peak_used_bytes'] / GIB:.3f} GiB, peak pool "
            f"reserved {s['peak_total_bytes'] / GIB:.3f} GiB, device in use after "
            f"{s['driver_used_after'] / GIB:.3f} GiB of {r['driver_total'] / GIB:.1f} GiB "
            f"({s['seconds'] * 1e3:.1f} ms)")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=60000)
    p.add_argument("--layers", type=_parse_layers, default=[784, 256, 128, 64, 10])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--output", help="write the measurements as JSON here")
    args = p.parse_args(argv)
    from xpnet.backend import cuda_status

    usable, reason = cuda_status(0)
    if not usable:
        print(f"gpu_memory: no usable CUDA GPU ({reason})", file=sys.stderr)
        return 1
    result = measure(args.rows, args.layers, args.dtype, args.optimizer)
    print(summary(result))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
