"""The program that tests/test_distributed.py launches under ``mpiexec -n N``.

    mpiexec -n 2 python tests/mpi_worker.py train CONFIGS.json OUTDIR
    mpiexec -n 2 python tests/mpi_worker.py resume CONFIG.json STATE_IN STATE_OUT
    mpiexec -n 2 python tests/mpi_worker.py fail {raise|hang|die|exit} OUTDIR
    mpiexec -n 2 python tests/mpi_worker.py cli-exit CODE RANKS_THAT_FAIL
    python tests/mpi_worker.py cli-one

``train`` trains each configuration of the JSON list (see :func:`problem` and :func:`train`)
with a communicator and writes every rank's parameters and history to
``OUTDIR/NAME.rank{r}.npz``; the test trains the same configurations in one process and
compares. Data are small and synthetic, so a launch takes a few seconds.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time

import numpy as np

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import xpnet  # noqa: E402
from xpnet import distributed  # noqa: E402

SIZES = [12, 16, 8, 3]


def problem(n=60, seed=7):
    """A small, seeded 3-class problem: ``(X, y, X_dev, y_dev)``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + n // 4, SIZES[0]))
    W = rng.standard_normal((SIZES[0], SIZES[-1]))
    y = (X @ W + 0.5 * rng.standard_normal((len(X), SIZES[-1]))).argmax(axis=1)
    return X[:n], y[:n], X[n:], y[n:]


def build(cfg, device="cpu"):
    return xpnet.MLP(SIZES, dtype=cfg.get("dtype", "float64"), seed=3, device=device,
                     batch_norm=cfg.get("batch_norm", False), dropout=cfg.get("dropout", 0.0),
                     l2=cfg.get("l2", 0.0))


def trainer(cfg, net, comm=None):
    return xpnet.Trainer(net, optimizer=cfg["optimizer"], lr=cfg.get("lr"),
                         epochs=cfg.get("epochs", 2), batch_size=cfg.get("batch_size"),
                         seed=cfg.get("seed", 11), comm=comm, schedule=cfg.get("schedule",
                                                                               "constant"),
                         **cfg.get("options", {}))


def train(cfg, comm=None, device="cpu"):
    """Train one configuration; returns ``(net, trainer)``."""
    X, y, X_dev, y_dev = problem(cfg.get("n", 60))
    net = build(cfg, device)
    t = trainer(cfg, net, comm)
    dev = (X_dev, y_dev) if cfg.get("dev", True) else (None, None)
    t.fit(X, y, *dev)
    return net, t


def _host(net):
    return np.asarray(net.device.to_numpy(net.flat.data), dtype=np.float64)


def _save_result(path, net, t):
    h = t.history
    np.savez(path, params=_host(net), loss=np.array(h.loss), accuracy=np.array(h.accuracy),
             val_loss=np.array(h.val_loss), val_accuracy=np.array(h.val_accuracy),
             buffers=np.concatenate([np.ravel(net.device.to_numpy(b)) for b in net.buffers()]
                                    or [np.zeros(0)]))


def main_train(configs_path, outdir):
    comm = distributed.init(timeout=60)
    with open(configs_path) as f:
        configs = json.load(f)
    for cfg in configs:
        device = "cpu"
        if cfg.get("strict_device"):
            from strict_device import StrictDevice  # noqa: PLC0415

            device = StrictDevice()
        net, t = train(cfg, comm, device)
        _save_result(os.path.join(outdir, f"{cfg['name']}.rank{comm.rank}.npz"), net, t)


def main_resume(config_path, state_in, state_out):
    """Continue the run in ``state_in`` (or start it when the file is missing) up to the
    config's epochs on however many ranks this is; rank 0 writes ``state_out``."""
    comm = distributed.init(timeout=60)
    with open(config_path) as f:
        cfg = json.load(f)
    X, y, X_dev, y_dev = problem(cfg.get("n", 60))
    net = build(cfg)
    t = trainer(cfg, net, comm)
    if cfg.get("stop_after"):  # interrupted, as by Ctrl-C: only rank 0 asks, all ranks stop
        t.callback = lambda tr, record: comm.rank == 0 and tr.epoch >= cfg["stop_after"]
    if os.path.exists(state_in):
        with open(state_in, "rb") as f:
            saved = pickle.load(f)
        net.load_state_dict(saved["net"])
        t.load_state_dict(saved["trainer"])
    t.fit(X, y, X_dev, y_dev)
    if distributed.is_root(comm):
        write_state(state_out, net, t)


def write_state(path, net, t):
    state = t.state_dict()
    state = {"json": json.loads(json.dumps(state["json"])),
             "arrays": {k: np.array(v) for k, v in state["arrays"].items()}}
    with open(path, "wb") as f:
        pickle.dump({"net": net.state_dict(), "trainer": state}, f)


def main_fail(mode, outdir):
    """Rank 1 fails in the middle of the first epoch's end (its callback): ``raise`` an
    uncaught exception, ``hang`` forever, ``die`` at once, or ``exit`` normally (code 0)."""
    comm = distributed.init(timeout=2)
    cfg = {"optimizer": "sgd", "batch_size": 10, "epochs": 50}
    X, y, _, _ = problem()
    net = build(cfg)

    def callback(trainer, record):
        if comm.rank == 1:
            if mode == "raise":
                raise ValueError("rank 1 cannot go on")
            if mode == "hang":
                time.sleep(3600)
            if mode == "die":
                os._exit(3)
            if mode == "exit":
                sys.exit(0)
        return False

    t = trainer(cfg, net, comm)
    t.callback = callback
    t.fit(X, y)
    with open(os.path.join(outdir, f"finished.rank{comm.rank}"), "w") as f:
        f.write("finished\n")


def main_cli_exit(code, failing):
    """The command-line pattern: ``init_cli()``, a run that prints an error on the ranks in
    ``failing`` (comma-separated) and returns ``code`` there, then ``finish``."""
    from xpnet.cli import Failure, run  # noqa: PLC0415

    def job(argv):
        comm = distributed.init_cli(timeout=20)
        print(f"stdout of rank {comm.rank}", flush=True)
        if str(comm.rank) in failing.split(","):
            raise Failure(f"the data of rank {comm.rank} are damaged")
        comm.barrier()  # the others wait here, as in a collective
        return 0

    sys.exit(distributed.finish(run(job, [], "worker")))


def main_cli_one():
    """Without mpiexec: ``init_cli`` must refuse one rank with the CLI's one-line usage error."""
    from xpnet.cli import run  # noqa: PLC0415

    sys.exit(run(lambda argv: distributed.init_cli() and 0, [], "worker"))


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    {"train": main_train, "resume": main_resume, "fail": main_fail,
     "cli-exit": main_cli_exit, "cli-one": lambda: main_cli_one()}[command](*rest)
