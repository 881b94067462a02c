"""Seconds of training until MNIST test accuracy first reaches a target: xpnet against PyTorch.

    python bench/time_to_accuracy.py                       # xpnet adam lr 1e-3 batch 128, 98%
    python bench/time_to_accuracy.py --optimizer momentum --lr 0.05 --schedule cosine --epochs 20
    python bench/time_to_accuracy.py --no-torch --device cuda

Both runs train the same ``784-256-128-64-10`` ReLU MLP in float32 from the same initial weights
(xpnet's seeded He initialisation) on the same device: xpnet with the recipe given by the flags
(default Adam, lr 1e-3, batch 128, constant rate) through ``xpnet.Trainer``, PyTorch eager with
``torch.optim.Adam`` (lr 1e-3, batch 128) and a shuffled mini-batch loop. After every epoch the
clock is paused and accuracy on the 10000 test images is measured; the reported time is training
time only (no data loading, no transfer of the data to the device, no evaluation).

MNIST is read from the four ``.gz`` (or uncompressed) IDX files in ``--data-dir``, else
``$XPNET_DATA_DIR``, else ``~/.cache/xpnet/mnist``, else ``../shared/data/mnist`` next to the
repository. Images are scaled to [0, 1]. Results are printed and written as JSON to
a new file ``bench/results/time_to_accuracy-<machine>-<date>-<short commit>.json`` (``-2``,
``-3``, ... is added when the name exists: earlier results are never rewritten).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import sys
import time

import numpy as np

from xpnet.optimizers import OPTIMIZERS, optimizer_options

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
SIZES = [784, 256, 128, 64, 10]
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}


# ---------------------------------------------------------------------- data
def data_dir_candidates(flag):
    if flag:
        return [flag]
    out = []
    if os.environ.get("XPNET_DATA_DIR"):
        out.append(os.environ["XPNET_DATA_DIR"])
    out.append(os.path.join(os.path.expanduser("~"), ".cache", "xpnet", "mnist"))
    out.append(os.path.join(os.path.dirname(ROOT), "shared", "data", "mnist"))
    return out


def _read(directory, name, offset, expected):
    for path, opener in ((os.path.join(directory, name + ".gz"), gzip.open),
                         (os.path.join(directory, name), open)):
        if os.path.exists(path):
            with opener(path, "rb") as f:
                raw = f.read()
            arr = np.frombuffer(raw, dtype=np.uint8, offset=offset)
            if arr.size != expected:
                raise SystemExit(f"{path}: expected {expected} bytes of data, got {arr.size}")
            return arr
    raise FileNotFoundError(name)


def load_mnist(flag=None):
    """``(X_train, y_train, X_test, y_test)``: float32 images in [0, 1] (N, 784), int64 labels."""
    tried = []
    for directory in data_dir_candidates(flag):
        try:
            out = []
            for images, labels, n in FILES.values():
                X = _read(directory, images, 16, n * 784).reshape(n, 784)
                y = _read(directory, labels, 8, n)
                out += [X.astype(np.float32) / np.float32(255), y.astype(np.int64)]
            return (*out, directory)
        except FileNotFoundError:
            tried.append(directory)
    raise SystemExit("MNIST IDX files not found in " + ", ".join(tried) +
                     "; pass --data-dir or set XPNET_DATA_DIR (e.g. `make train` downloads them).")


# ---------------------------------------------------------------------- runs
class Clock:
    """Accumulates training time; ``pause()`` / ``resume()`` around evaluation."""

    def __init__(self):
        self.total = 0.0
        self._t = None

    def resume(self):
        self._t = time.perf_counter()

    def pause(self):
        self.total += time.perf_counter() - self._t
        self._t = None


def optimizer_kwargs(args) -> dict:
    """Options for ``xpnet.Trainer`` beyond the learning rate: ``momentum`` when it was given
    (only an optimizer that takes it gets it; ``main`` refuses it for the others)."""
    return {} if args.momentum is None else {"momentum": args.momentum}


def run_xpnet(args, data, init):
    import xpnet

    X, y, X_test, y_test = data
    net = xpnet.MLP(SIZES, dtype=args.dtype, device=args.device, seed=args.seed)
    net.set_params(init)
    dev = net.device
    Xd, yd = dev.send(X), dev.send(y)
    Xt, yt = dev.send(X_test), dev.send(y_test)
    clock, log = Clock(), []

    def on_epoch(trainer, record):
        dev.synchronize()
        clock.pause()
        _, acc = net.evaluate(Xt, yt)
        log.append({"epoch": record["epoch"], "seconds": clock.total, "test_accuracy": acc,
                    "train_loss": record["loss"]})
        print(f"  xpnet epoch {record['epoch']:>2}: {clock.total:7.2f} s  test acc {acc:.4f}",
              flush=True)
        done = acc >= args.target
        if not done:
            clock.resume()
        return done

    trainer = xpnet.Trainer(net, optimizer=args.optimizer, lr=args.lr, epochs=args.epochs,
                            batch_size=args.batch_size, schedule=args.schedule,
                            step_size=args.step_size, gamma=args.gamma, seed=args.seed,
                            callback=on_epoch, **optimizer_kwargs(args))
    clock.resume()
    trainer.fit(Xd, yd)
    return {"backend": f"xpnet-{'cupy' if dev.is_gpu else 'numpy'}", "device": dev.name,
            "recipe": trainer.config(), "epochs_log": log, **_reached(log, args.target)}


def run_torch(args, data, init):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(os.cpu_count() or 1)
    X, y, X_test, y_test = data
    if args.device in ("cpu",) or (args.device == "auto" and not torch.cuda.is_available()):
        device = torch.device("cpu")
    else:
        if not torch.cuda.is_available():
            return {"backend": "torch", "skipped": "this PyTorch build sees no CUDA device"}
        device = torch.device("cuda")
    dtype = getattr(torch, args.dtype)
    params = [torch.tensor(a, dtype=dtype, device=device, requires_grad=True)
              for pair in init for a in pair]

    def logits(A):
        for l in range(len(init)):
            A = F.linear(A, params[2 * l], params[2 * l + 1])
            if l < len(init) - 1:
                A = torch.relu(A)
        return A

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    Xd = torch.as_tensor(X, device=device, dtype=dtype)
    yd = torch.as_tensor(y, device=device)
    Xt = torch.as_tensor(X_test, device=device, dtype=dtype)
    yt = torch.as_tensor(y_test, device=device)
    opt = torch.optim.Adam(params, lr=1e-3)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    n, bs = Xd.shape[0], 128
    clock, log = Clock(), []
    clock.resume()
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(n, generator=gen, device=device)
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            opt.zero_grad()
            loss = F.cross_entropy(logits(Xd.index_select(0, idx)), yd.index_select(0, idx))
            loss.backward()
            opt.step()
        sync()
        clock.pause()
        with torch.inference_mode():
            acc = float((logits(Xt).argmax(dim=1) == yt).float().mean())
        log.append({"epoch": epoch, "seconds": clock.total, "test_accuracy": acc,
                    "last_batch_loss": float(loss.detach())})
        print(f"  torch epoch {epoch:>2}: {clock.total:7.2f} s  test acc {acc:.4f}", flush=True)
        if acc >= args.target:
            break
        clock.resume()
    return {"backend": f"torch-{device.type}", "device": str(device),
            "recipe": {"optimizer": "adam", "lr": 1e-3, "batch_size": bs, "schedule": "constant",
                       "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
            "epochs_log": log, **_reached(log, args.target)}


def _reached(log, target):
    per_epoch = log[-1]["seconds"] / log[-1]["epoch"] if log else None
    for rec in log:
        if rec["test_accuracy"] >= target:
            return {"reached": True, "epochs": rec["epoch"], "seconds": rec["seconds"],
                    "seconds_per_epoch": per_epoch}
    return {"reached": False, "epochs": log[-1]["epoch"] if log else 0,
            "seconds": log[-1]["seconds"] if log else 0.0, "seconds_per_epoch": per_epoch,
            "best_accuracy": max((r["test_accuracy"] for r in log), default=None)}


def _describe(r, target):
    if "skipped" in r:
        return f"{r['backend']:<12} skipped: {r['skipped']}"
    if r["reached"]:
        return (f"{r['backend']:<12} reached {target:.1%} after {r['epochs']} epochs, "
                f"{r['seconds']:.2f} s of training ({r['seconds_per_epoch']:.2f} s/epoch)")
    return (f"{r['backend']:<12} did NOT reach {target:.1%} in {r['epochs']} epochs "
            f"({r['seconds']:.2f} s; best {r['best_accuracy']:.4f})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="directory with the MNIST IDX files")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (both runs; default cpu)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--optimizer", default="adam", choices=list(OPTIMIZERS))
    p.add_argument("--lr", type=float, default=1e-3,
                   help="learning rate of the xpnet run (PyTorch's is always Adam's 1e-3)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--schedule", default="constant", choices=["constant", "step", "cosine"])
    p.add_argument("--step-size", type=int, default=None, help="epochs per step (step schedule)")
    p.add_argument("--gamma", type=float, default=0.1, help="decay of the step schedule")
    p.add_argument("--momentum", type=float, default=None,
                   help="momentum, for the optimizers that take one (default: the optimizer's "
                        "own, 0.9 for momentum/nesterov, 0 for rmsprop)")
    p.add_argument("--epochs", type=int, default=30, help="cap on epochs (both runs)")
    p.add_argument("--target", type=float, default=0.98, help="test accuracy to reach")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch run")
    p.add_argument("--output", help="JSON path (default bench/results/time_to_accuracy-"
                   "<machine>-<date>-<commit>.json; an existing file is never overwritten)")
    args = p.parse_args(argv)
    if args.momentum is not None and "momentum" not in optimizer_options(args.optimizer):
        takes = [n for n in OPTIMIZERS if "momentum" in optimizer_options(n)]
        p.error(f"--momentum: the {args.optimizer} optimizer has no momentum (only "
                f"{', '.join(takes)} do)")

    X, y, X_test, y_test, directory = load_mnist(args.data_dir)
    data = (X, y, X_test, y_test)
    print(f"MNIST from {directory}: train {X.shape}, test {X_test.shape}; target "
          f"{args.target:.1%}, at most {args.epochs} epochs, device {args.device}", flush=True)

    import xpnet

    init = [(W.copy(), b.copy()) for W, b in
            xpnet.MLP(SIZES, dtype=args.dtype, device="cpu", seed=args.seed).params]
    results = [run_xpnet(args, data, init)]
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            results.append({"backend": "torch", "skipped": "PyTorch is not installed"})
        else:
            results.append(run_torch(args, data, init))

    print()
    for r in results:
        print(_describe(r, args.target))
    xp_r = results[0]
    ratio = epoch_ratio = None
    if len(results) > 1 and "skipped" not in results[1]:
        epoch_ratio = xp_r["seconds_per_epoch"] / results[1]["seconds_per_epoch"]
        print(f"seconds per epoch, xpnet / torch: {epoch_ratio:.2f}x")
        if xp_r["reached"] and results[1]["reached"]:
            ratio = xp_r["seconds"] / results[1]["seconds"]
            print(f"time-to-{args.target:.1%} ratio xpnet / torch: {ratio:.2f}x "
                  f"(epochs {xp_r['epochs']} vs {results[1]['epochs']})")

    spec = importlib.util.spec_from_file_location("xpnet_bench_conftest",
                                                  os.path.join(BENCH_DIR, "conftest.py"))
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    machine = conf.machine_description()
    path = conf.free_path(args.output) if args.output else conf.result_path(
        "time_to_accuracy-", machine["slug"], os.path.join(BENCH_DIR, "results"))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "x") as f:
        json.dump({"target": args.target, "epochs_cap": args.epochs, "machine": machine,
                   "command": " ".join(sys.argv), "results": results,
                   "ratio_xpnet_over_torch": ratio,
                   "seconds_per_epoch_ratio_xpnet_over_torch": epoch_ratio}, f, indent=1)
    print(f"results: {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
