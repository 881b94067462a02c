"""Before/after timing of two xpnet checkouts on the same machine, interleaved.

    python bench/ab_versions.py OLD_CHECKOUT NEW_CHECKOUT [--rounds 7]

Each round runs one worker process per checkout, alternating (A B A B ...), so both see the same
machine drift; a worker imports xpnet from its checkout (PYTHONPATH first), times each workload
with the median of several repetitions, and prints JSON. The report gives, per workload, the
median over rounds and the ratio new / old (below 1 is faster). Workloads: the 784-256-128-64-10
ReLU MLP in float32 on synthetic data: forward+backward at m=128 and m=60000, an Adam step at
m=128 (forward+backward+update), its ratio to forward+backward, and inference at m=10000.

Works with the first release's private hot path (``_loss_and_grads``, ``opt.step(grads)``) and
with the public one (``forward_backward``, ``opt.step()``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r'''
import json, time, numpy as np, xpnet
from xpnet.optimizers import make_optimizer
rng = np.random.default_rng(0)
X = rng.random((60000, 784), dtype=np.float32)
y = rng.integers(0, 10, 60000)
net = xpnet.MLP([784, 256, 128, 64, 10], seed=0, device="cpu")
new = hasattr(net, "forward_backward")
fb = net.forward_backward if new else net._loss_and_grads
opt = make_optimizer("adam", net if new else net.parameters(), 1e-3)
step = opt.step if new else (lambda: opt.step(net.gradients()))
Xb, yb = X[:128].copy(), y[:128].copy()
Xt = X[:10000].copy()

def timeit(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return float(np.median(times))

def adam_step():
    fb(Xb, yb)
    step()

out = {
    "fwd_bwd_128": timeit(lambda: fb(Xb, yb), 300),
    "adam_step_128": timeit(adam_step, 300),
    "fwd_bwd_60000": timeit(lambda: fb(X, y), 3),
    "inference_10000": timeit(lambda: net.predict(Xt), 10),
}
out["adam_over_fwd_bwd_128"] = out["adam_step_128"] / out["fwd_bwd_128"]
print(json.dumps(out))
'''


def run_worker(checkout):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout))
    out = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    runs = {"old": [], "new": []}
    for r in range(args.rounds):
        for label in ("old", "new") if r % 2 == 0 else ("new", "old"):
            runs[label].append(run_worker(getattr(args, label)))
    print(f"{'workload':<24} {'old (median)':>14} {'new (median)':>14} {'new/old':>8}")
    report = {}
    for key in runs["old"][0]:
        old = statistics.median(r[key] for r in runs["old"])
        new = statistics.median(r[key] for r in runs["new"])
        report[key] = {"old": old, "new": new, "ratio": new / old}
        unit = "" if key.startswith("adam_over") else " s"
        print(f"{key:<24} {old:>12.5f}{unit:2} {new:>12.5f}{unit:2} {new / old:>8.2f}")
    print(json.dumps({"rounds": args.rounds, "report": report}))


if __name__ == "__main__":
    sys.exit(main())
