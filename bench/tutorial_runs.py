"""The "deep net from scratch" tutorials' headline runs, each one command, with xpnet's numbers
measured beside the tutorial's reported ones.

    python bench/tutorial_runs.py                         # every row, one after the other
    python bench/tutorial_runs.py --rows seed004 --threads 1
    python bench/tutorial_runs.py --rows seed004 seed004-sigmoid --seeds 0 1 2 3 4
    python bench/tutorial_runs.py --rows seed000-normal seed000-he --jobs 2 --threads 1

Each row runs in its own process (``--threads`` BLAS threads each, ``--jobs`` rows at a time),
once per seed of ``--seeds`` (default 0). Its test accuracy, final training accuracy and
training seconds are printed and written to a new file
``bench/results/tutorial-runs-<machine>-<date>-<sha>.json`` (never an existing one). Seconds
from rows run side by side (``--jobs 2``) share the cores: compare them only within one run.

Two kinds of row (``ROWS``, the table in docs/learn/tutorials.md: the tutorial, its setup,
the number it reports):

``args``
    a ``python -m xpnet.train`` command. Its final training accuracy is the last epoch's, which
    for a full-batch run is the accuracy on all training images before the last update.
``api``
    a run the command line cannot express, through the Python API: a function of this file,
    run as ``python bench/tutorial_runs.py --rows NAME``. Two rows need it: sigmoid outputs
    (the CLI gives a classifier a softmax output; ``xpnet.MLP(output="sigmoid")`` has the
    sigmoid head), and the PyTorch stand-in for seed 002's Keras comparison. Their training
    accuracy is measured after the last update.

The long rows take 10-25 minutes each on a 2-core CPU; tests/test_tutorial_runs.py runs each
row cut to a few iterations on a subset of MNIST instead, and checks that its loss falls.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
from conftest_loader import bench_conftest  # noqa: E402

SEED000 = ["--layers", "784,100,100,10", "--optimizer", "gd", "--batch-size", "full", "--lr",
           "0.1", "--schedule", "constant", "--epochs", "3000"]
SEED002 = ["--layers", "784,256,128,64,10", "--init", "he", "--optimizer", "momentum", "--lr",
           "0.05", "--schedule", "constant", "--batch-size", "128", "--epochs", "50",
           "--patience", "3", "--dev-fraction", "0.1"]
SEED004 = ["--layers", "784,16,16,10", "--activation", "tanh", "--init", "normal:0.1",
           "--optimizer", "gd", "--batch-size", "full", "--lr", "1", "--schedule", "step",
           "--step-size", "75", "--epochs", "150"]
ROWS = {
    "seed000-normal": {
        "tutorial": "seed 000", "setup": "[784,100,100,10], full-batch GD lr 0.1, the small "
        "N(0,1) x 0.01 start, 3,000 iterations", "reported": "stuck around 20%",
        "args": [*SEED000, "--init", "normal"]},
    "seed000-normal-l2": {
        "tutorial": "seed 000", "setup": "the same with L2 0.01", "reported": "stuck",
        "args": [*SEED000, "--init", "normal", "--l2", "0.01"]},
    "seed000-he": {
        "tutorial": "seed 000", "setup": "[784,100,100,10], full-batch GD lr 0.1, He start, "
        "3,000 iterations", "reported": "(He fixes the start)",
        "args": [*SEED000, "--init", "he"]},
    "seed000-he-l2": {
        "tutorial": "seed 000", "setup": "the same with L2 0.01",
        "reported": "96% training accuracy", "args": [*SEED000, "--init", "he", "--l2", "0.01"]},
    "seed001-standin": {
        "tutorial": "seed 001 (stand-in)", "setup": "its kind of network on MNIST 4 against 9 "
        "(its 6,002 64x64x3 cats and dogs are on its author's site only): [784,20,7,5,1], "
        "ReLU, one sigmoid output, binary cross-entropy, He start, full-batch GD lr 0.1, "
        "1,000 iterations", "reported": "(another data set)", "api": "seed001_standin"},
    "seed002": {
        "tutorial": "seed 002", "setup": "[784,256,128,64,10] ReLU, He start, momentum 0.9 "
        "lr 0.05, batch 128, early stopping: patience 3 on the loss of a 10% dev set, best "
        "epoch restored, at most 50 epochs", "reported": "(against Keras)", "args": SEED002},
    "seed002-torch": {
        "tutorial": "seed 002 (PyTorch for Keras)", "setup": "the same network, optimizer, "
        "batches, dev set and stopping rule in PyTorch", "reported": "(Keras)",
        "api": "seed002_torch"},
    "seed003": {
        "tutorial": "seed 003", "setup": "[784,256,128,64,10], full-batch GD lr 0.5, He start, "
        "500 iterations", "reported": "97%",
        "args": ["--optimizer", "gd", "--batch-size", "full", "--lr", "0.5", "--schedule",
                 "constant", "--epochs", "500", "--dev-fraction", "0", "--init", "he"]},
    "seed004": {
        "tutorial": "seed 004", "setup": "tanh [784,16,16,10] from N(0,1) x 0.1, softmax "
        "cross-entropy, full batch, lr 1 then 0.1 after 75 of 150 iterations",
        "reported": "85.9% training accuracy", "args": SEED004},
    "seed004-sigmoid": {
        "tutorial": "seed 004", "setup": "the same with ten sigmoid outputs and binary "
        "cross-entropy summed over them (the prediction is the largest output)",
        "reported": "85.9% training accuracy", "api": "seed004_sigmoid"},
}

DIGITS_001 = (4, 9)  # two digits that are easy to confuse; 9 is the positive class


def mnist_unit(subset=None):
    """MNIST from ``$XPNET_DATA_DIR`` as the CLI feeds it: pixels / 255 in float32, labels int64;
    ``subset`` keeps the first ``subset`` training and ``subset // 6`` test images (as the
    CLI's test hook does)."""
    import xpnet

    d = xpnet.load_mnist(download=False)
    X, y, Xt, yt = d.X_train, d.y_train, d.X_test, d.y_test
    if subset:
        X, y, Xt, yt = X[:subset], y[:subset], Xt[:subset // 6], yt[:subset // 6]
    return (X.astype(np.float32) / np.float32(255), y,
            Xt.astype(np.float32) / np.float32(255), yt)


def seed004_sigmoid(seed=0, epochs=150, step_size=75, subset=None):
    """Seed 004's run with sigmoid outputs: tanh [784,16,16,10] from N(0,1) x 0.1, ten sigmoid
    outputs against one-hot targets, binary cross-entropy summed over the outputs and averaged
    over the images, full-batch GD at lr 1, x 0.1 every ``step_size`` iterations. Accuracy is
    the share of images whose largest output is their class."""
    import xpnet

    X, y, Xt, yt = mnist_unit(subset)
    net = xpnet.MLP([784, 16, 16, 10], activation="tanh", output="sigmoid", init="normal:0.1",
                    device="cpu", seed=seed)
    trainer = xpnet.Trainer(net, optimizer="gd", lr=1.0, epochs=epochs, batch_size=None,
                            schedule="step", step_size=step_size, seed=seed)
    history = trainer.fit(X, np.eye(10, dtype=np.float32)[y])
    train_acc = float((np.asarray(net.forward(X)).argmax(axis=1) == y).mean())
    test_acc = float((np.asarray(net.forward(Xt)).argmax(axis=1) == yt).mean())
    return _result(history, test_acc, train_acc)


def seed001_standin(seed=0, epochs=1000, lr=0.1, subset=None):
    """Seed 001's kind of network on a binary task made from MNIST: the digits 4 (label 0) and
    9 (label 1) of the training and test sets, [784,20,7,5,1] with ReLU, one sigmoid output,
    binary cross-entropy, He start, full-batch GD at ``lr`` for ``epochs`` iterations."""
    import xpnet

    X, y, Xt, yt = mnist_unit(subset)
    keep, keep_t = np.isin(y, DIGITS_001), np.isin(yt, DIGITS_001)
    X, y, Xt, yt = X[keep], y[keep], Xt[keep_t], yt[keep_t]
    ones = (y == DIGITS_001[1]).astype(np.float32)[:, None]
    ones_t = (yt == DIGITS_001[1]).astype(np.float32)[:, None]
    net = xpnet.MLP([784, 20, 7, 5, 1], activation="relu", output="sigmoid", init="he",
                    device="cpu", seed=seed)
    trainer = xpnet.Trainer(net, optimizer="gd", lr=lr, epochs=epochs, batch_size=None,
                            schedule="constant", seed=seed)
    history = trainer.fit(X, ones)
    _, train_acc = net.evaluate(X, ones)
    _, test_acc = net.evaluate(Xt, ones_t)
    return {**_result(history, test_acc, train_acc), "train_images": len(y),
            "test_images": len(yt)}


def seed002_torch(seed=0, epochs=50, patience=3, lr=0.05, momentum=0.9, batch_size=128,
                  dev_fraction=0.1, subset=None, threads=None):
    """Seed 002's row in PyTorch, standing in for Keras: the network, optimizer, batches and
    stopping rule of the xpnet command (``SEED002``), written in plain ``torch``.

    The dev set is xpnet's own split (``xpnet.preprocessing.holdout_split`` with the run's
    seed: the same images); the weights start from He's normal (``kaiming_normal_``, fan in,
    biases zero) drawn by ``torch.manual_seed(seed)``; ``torch.optim.SGD`` with momentum
    (``v = mu v + g``, ``p -= lr v``: xpnet's rule); mean cross-entropy; batches of
    ``batch_size`` in a ``torch.randperm`` order per epoch. After each epoch the dev loss is
    measured; a lower one is the new best (its weights kept), else the wait grows, and
    ``patience`` epochs without a lower dev loss stop the run; the best epoch's weights are
    restored before the test. Seconds: each epoch's training and dev pass, as xpnet counts."""
    import torch
    from torch import nn

    from xpnet.preprocessing import holdout_split

    if threads:
        torch.set_num_threads(threads)
    X, y, Xt, yt = mnist_unit(subset)
    train_idx, dev_idx = holdout_split(y, dev_fraction, seed, True, None)
    Xtr, ytr = torch.from_numpy(X[train_idx]), torch.from_numpy(y[train_idx])
    Xdev, ydev = torch.from_numpy(X[dev_idx]), torch.from_numpy(y[dev_idx])
    torch.manual_seed(seed)
    sizes = [784, 256, 128, 64, 10]
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(n_in, n_out)
        nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        nn.init.zeros_(linear.bias)
        layers += [linear] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    model = nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    hist = {"loss": [], "accuracy": [], "val_loss": [], "seconds": []}
    best, best_state, best_epoch, wait = float("inf"), None, 0, 0
    n = len(ytr)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        loss_sum, correct = 0.0, 0
        for idx in torch.randperm(n).split(batch_size):
            xb, yb = Xtr[idx], ytr[idx]
            out = model(xb)
            loss = loss_fn(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int((out.argmax(1) == yb).sum())
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(model(Xdev), ydev))
        hist["seconds"].append(time.perf_counter() - t0)
        hist["loss"].append(loss_sum / n)
        hist["accuracy"].append(correct / n)
        hist["val_loss"].append(val_loss)
        if val_loss < best:
            best, best_state, best_epoch, wait = val_loss, copy.deepcopy(model.state_dict()), \
                epoch, 0
        else:
            wait += 1
            if wait >= patience:
                break
    model.load_state_dict(best_state)
    with torch.no_grad():
        test_acc = float((model(torch.from_numpy(Xt)).argmax(1).numpy() == yt).mean())
    return {"test_accuracy": test_acc, "final_train_accuracy": hist["accuracy"][-1],
            "train_seconds": float(sum(hist["seconds"])), "epochs": len(hist["loss"]),
            "best_epoch": best_epoch, "train_images": n, "dev_images": len(ydev),
            "history": hist}


def _result(history, test_acc, train_acc):
    return {"test_accuracy": float(test_acc), "final_train_accuracy": float(train_acc),
            "train_seconds": float(sum(history.seconds)), "epochs": len(history.loss),
            "history": {"loss": [float(v) for v in history.loss],
                        "accuracy": [float(v) for v in history.accuracy],
                        "lr": [float(v) for v in history.lr]}}


API = {"seed001_standin": seed001_standin, "seed002_torch": seed002_torch,
       "seed004_sigmoid": seed004_sigmoid}


def command(name):
    """The row's one command, as the README shows it."""
    row = ROWS[name]
    if "api" in row:
        return f"python bench/tutorial_runs.py --rows {name}"
    return "python -m xpnet.train " + " ".join(row["args"])


def run_row(name, seed, threads, workdir):
    """Row ``name`` at ``seed`` in a child process with ``threads`` BLAS threads: its summary."""
    row = ROWS[name]
    out = os.path.join(workdir, f"{name}-{seed}.json")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    if "api" in row:
        cmd = [sys.executable, os.path.abspath(__file__), "--call", row["api"], "--seeds",
               str(seed), "--threads", str(threads), "--output", out]
    else:
        cmd = [sys.executable, "-m", "xpnet.train", *row["args"], "--device", "cpu",
               "--threads", str(threads), "--seed", str(seed), "--quiet", "--metrics-json", out]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        return {"name": name, "seed": seed, "error": result.stderr.strip().splitlines()[-1:]}
    with open(out) as f:
        metrics = json.load(f)
    summary = {"name": name, "seed": seed,
               **{k: v for k, v in row.items() if k not in ("args", "api")},
               "command": command(name), "threads": threads}
    if "api" in row:
        return {**summary, **{k: v for k, v in metrics.items() if k != "history"}}
    history = metrics["history"]
    return {**summary, "test_accuracy": metrics["test_accuracy"],
            "final_train_accuracy": history["accuracy"][-1] if history.get("accuracy") else None,
            "train_seconds": metrics["train_seconds"], "epochs": metrics["epochs_run"],
            "best_epoch": metrics.get("best_epoch")}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="one run per seed")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads per row")
    p.add_argument("--jobs", type=int, default=1, help="rows run at the same time")
    p.add_argument("--call", choices=list(API), help=argparse.SUPPRESS)  # the child of a row
    p.add_argument("--output", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.call:
        kwargs = {"threads": args.threads} if args.call == "seed002_torch" else {}
        with open(args.output, "w") as f:
            json.dump(API[args.call](seed=args.seeds[0], **kwargs), f)
        return
    conf = bench_conftest()
    runs = [(name, seed) for name in args.rows for seed in args.seeds]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda r: run_row(*r, args.threads, workdir), runs))
    for row in rows:
        print(json.dumps(row), flush=True)
    out = conf.result_path("tutorial-runs-")
    with open(out, "w") as f:
        json.dump({"machine": conf.machine_description(), "jobs": args.jobs,
                   "threads": args.threads, "load_average_before": load_before,
                   "load_average_after": os.getloadavg(), "rows": rows},
                  f, indent=2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
