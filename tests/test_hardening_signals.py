"""Signals (issue 11, families 6 and 7): real SIGINT / SIGTERM, sent with ``os.kill`` to real
training subprocesses at chosen moments.

* During the final save (the child prints ``saving PATH ...`` just before it; a model of 10M
  parameters with Adam state makes a 160 MB file, so the save takes most of a second): the
  signal is held until the file is complete, the finished run is kept, the exit code is 130 or
  143, and no temporary file is left.
* A burst of SIGINTs (during training or during the save) exits 130 with no traceback, never
  -2 (an uncaught KeyboardInterrupt).
* SIGTERM while MNIST is downloading (from a mirror on 127.0.0.1 that trickles) removes the
  partial file and the data folder the run created, and exits 143.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_helpers import cli_env, epoch_numbers

from xpnet.checkpoint import load_checkpoint

BIG = ["--layers", "784,2048,2048,2048,10", "--batch-size", "full", "--dev-fraction", "0",
       "--device", "cpu", "--epochs", "1", "--save", "ck.npz"]
SMALL = ["--layers", "784,32,10", "--batch-size", "64", "--device", "cpu", "--epochs", "50"]


def start(args, cwd, subset, env=None):
    proc = subprocess.Popen([sys.executable, "-m", "xpnet.train", *map(str, args)], cwd=cwd,
                            env=cli_env(subset, env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.watchdog = threading.Timer(240, proc.kill)
    proc.watchdog.daemon = True
    proc.watchdog.start()
    return proc


def read_until(proc, predicate) -> list[str]:
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if predicate(line):
            return seen
    proc.wait()
    raise AssertionError(f"the child ended (exit {proc.returncode}) first; read {seen!r}; "
                         f"stderr {proc.stderr.read()!r}")


def finish(proc, seen):
    out, err = proc.communicate(timeout=240)
    proc.watchdog.cancel()
    return proc.returncode, "".join(seen) + out, err


def burst(proc, sig, n=20):
    for _ in range(n):
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            return
        time.sleep(0.002)


def assert_finished_run_saved(path):
    net, state = load_checkpoint(path, device="cpu", read_state=False)
    assert net.layer_sizes == [784, 2048, 2048, 2048, 10]
    _, state = load_checkpoint(path, device="cpu", read_state=("trainer/",))
    assert state["json"]["trainer"]["epoch"] == 1
    assert state["json"]["trainer"]["history"]["interrupted"] is False


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, count", [(signal.SIGINT, 130, 1), (signal.SIGTERM, 143, 1),
                                              (signal.SIGINT, 130, 20)],
                         ids=["SIGINT", "SIGTERM", "SIGINT-burst"])
def test_signal_during_the_final_save_keeps_the_finished_run(data_dir, tmp_path, sig, code,
                                                            count):
    (tmp_path / "ck.npz").write_bytes(b"an older checkpoint")
    proc = start([*BIG, "--data-dir", data_dir], tmp_path, subset=60)
    seen = read_until(proc, lambda line: line.startswith("saving ck.npz"))
    burst(proc, sig, count)
    rc, out, err = finish(proc, seen)
    assert rc == code, err
    assert "Traceback" not in err
    assert f"{signal.Signals(sig).name} received while saving: finishing the file first" in err
    assert "stopped after training had finished (epoch 1); ck.npz holds the finished run" in err
    assert "saved ck.npz" in out and "test accuracy" not in out
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]  # no temporary file
    assert_finished_run_saved(tmp_path / "ck.npz")


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(2))
def test_a_burst_of_sigint_during_training_exits_130(data_dir, tmp_path, trial):
    """Signals that arrive while the main thread is inside one NumPy call are delivered to
    Python as one, so a burst either aborts (a second SIGINT seen during the epoch) or stops
    after the epoch and saves (the rest seen during the save, which holds them, or later,
    when they are ignored). Either way: exit 130, one clean story, no traceback, and no file
    other than a complete checkpoint."""
    proc = start([*SMALL, "--data-dir", data_dir, "--save", "ck.npz"], tmp_path, subset=6000)
    seen = read_until(proc, lambda line: line.startswith("epoch "))
    burst(proc, signal.SIGINT, 30)
    rc, out, err = finish(proc, seen)
    assert rc == 130, (rc, err)
    assert "Traceback" not in err
    last = err.rstrip().splitlines()[-1]
    assert last == "xpnet.train: interrupted" or last.startswith(
        "xpnet.train: stopped after epoch "), err
    assert epoch_numbers(out)[-1] < 50
    if last == "xpnet.train: interrupted":
        assert os.listdir(tmp_path) == []  # aborted: nothing written, nothing left behind
    else:
        assert os.listdir(tmp_path) == ["ck.npz"]
        _, state = load_checkpoint(tmp_path / "ck.npz", device="cpu")
        assert state["json"]["trainer"]["epoch"] == epoch_numbers(out)[-1]


class _Trickle(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(6000):
                self.wfile.write(b"\x1f")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_sigterm_during_a_download_leaves_nothing_behind(tmp_path):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        data = tmp_path / "fresh" / "mnist"
        proc = start(SMALL + ["--data-dir", data], tmp_path, subset=None,
                     env={"XPNET_OFFLINE": "0", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
                          "XPNET_MNIST_MIRRORS": f"http://127.0.0.1:{httpd.server_address[1]}/"})
        deadline = time.monotonic() + 60
        while not (data.is_dir() and any(p.name.endswith(".tmp") for p in data.iterdir())):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        rc, _, err = finish(proc, [])
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert rc == 143, err
    # The download's progress bar may or may not have drawn before the signal (a race with the
    # .tmp file appearing); anything else before the one-line message is a defect.
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert lines[-1] == "xpnet.train: terminated", err
    assert all(line.startswith("train-images-idx3-ubyte.gz: ") for line in lines[:-1]), err
    assert not Path(tmp_path / "fresh").exists()
