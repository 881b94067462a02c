"""``python -m xpnet.predict`` end to end: a checkpoint trained here by ``python -m xpnet.train``,
then real subprocesses on real MNIST test images and real PNG files.

Skips, saying why, when ``XPNET_DATA_DIR`` is unset or lacks the MNIST files.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import SUBSET, one_error_line, run_module, run_train, scaler_of

import xpnet
from xpnet.checkpoint import load_checkpoint

SHADES = " .:-=+*#%@"
PROB_LINE = re.compile(r"^  (\d): +(\d+\.\d{4}) ?(#*)$")


@pytest.fixture(scope="module")
def mnist(data_dir):
    return xpnet.load_mnist(data_dir, download=False)


@pytest.fixture(scope="module")
def ckpt(data_dir, tmp_path_factory) -> Path:
    """A small model trained for real (4 epochs on 5400 images, about 90% test accuracy)."""
    path = tmp_path_factory.mktemp("predict") / "digits.npz"
    result = run_train(["--layers", "784,64,10", "--epochs", "4", "--batch-size", "128",
                        "--device", "cpu", "--data-dir", data_dir, "--quiet", "--save", path],
                       subset=SUBSET)
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def by_index0(ckpt, data_dir, tmp_path_factory):
    """``--test-index 0``, run once and shared by the tests that need it."""
    return predict([ckpt, "--test-index", 0], tmp_path_factory.mktemp("index0"), data_dir)


def predict(args, cwd, data_dir=None):
    extra = ["--data-dir", str(data_dir)] if data_dir is not None else []
    return run_module("xpnet.predict", [*args, *extra], cwd=cwd, timeout=120)


def parse(stdout):
    """(drawing lines, predicted digit, its printed probability, [10 probabilities])."""
    lines = stdout.splitlines()
    drawing = lines[:28]
    m = re.fullmatch(r"predicted digit: (\d)   probability (\d\.\d{4})(.*)", lines[28])
    assert m, lines[28]
    probs = []
    for digit, line in enumerate(lines[29:]):
        pm = PROB_LINE.match(line)
        assert pm, line
        assert int(pm.group(1)) == digit
        p = float(pm.group(2))
        assert len(pm.group(3)) == round(p * 40)  # the bar is as long as the probability says
        probs.append(p)
    assert len(probs) == 10
    return drawing, int(m.group(1)), float(m.group(2)), probs


def expected_proba(ckpt_path, image):
    """The model's probabilities for a 28x28 uint8 image, computed in-process."""
    net, state = load_checkpoint(ckpt_path, device="cpu")
    X = scaler_of(state).transform(image.reshape(1, 784), net.dtype)
    return np.asarray(net.predict_proba(X))[0]


def predict_error_line(result) -> str:
    return one_error_line(result, prog="xpnet.predict")


def write_png(path, image):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.imsave(path, image, cmap="gray", vmin=0, vmax=255)


# ------------------------------------------------------------------------------ --test-index
@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 9999])
def test_test_index_draws_predicts_and_lists_probabilities(index, ckpt, mnist, data_dir,
                                                           by_index0, tmp_path):
    result = by_index0 if index == 0 else predict([ckpt, "--test-index", index], tmp_path,
                                                  data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    drawing, pred, p_pred, probs = parse(result.stdout)
    image = mnist.X_test[index].reshape(28, 28)
    # 28 rows of 56 characters; background pixels are blank, ink is not
    assert [len(row) for row in drawing] == [56] * 28
    for r in range(28):
        for c in range(28):
            ch = drawing[r][2 * c]
            assert ch == drawing[r][2 * c + 1] and ch in SHADES
            assert (ch == " ") == (int(image[r, c]) * len(SHADES) < 256)
    assert f"(true label {mnist.y_test[index]})" in result.stdout.splitlines()[28]
    assert sum(probs) == pytest.approx(1.0, abs=1e-3)  # ten values rounded to 4 decimals
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert p_pred == max(probs) and probs.index(max(probs)) == pred
    want = expected_proba(ckpt, image)
    assert pred == int(want.argmax())
    np.testing.assert_allclose(probs, want, atol=6e-5)


# ------------------------------------------------------------------------------ --image
@pytest.mark.slow
@pytest.mark.parametrize("ink", ["light-on-dark", "dark-on-light"])
def test_png_of_a_test_image_predicts_like_its_test_index(ink, ckpt, mnist, by_index0, tmp_path):
    index = 0
    image = mnist.X_test[index].reshape(28, 28)
    png = tmp_path / "digit.png"
    write_png(png, image if ink == "light-on-dark" else 255 - image)
    assert png.read_bytes()[:4] == b"\x89PNG"

    by_index = by_index0
    by_image = predict([ckpt, "--image", png], tmp_path)
    assert by_index.returncode == 0 and by_image.returncode == 0, by_image.stderr
    _, pred_index, _, probs_index = parse(by_index.stdout)
    drawing, pred_image, _, probs_image = parse(by_image.stdout)
    assert pred_image == pred_index
    np.testing.assert_allclose(probs_image, probs_index, atol=5e-3)
    assert "true label" not in by_image.stdout
    assert drawing[0].strip() == ""  # the corner is background after any inversion


@pytest.mark.slow
def test_png_of_the_wrong_size_exits_1(ckpt, tmp_path):
    png = tmp_path / "big.png"
    write_png(png, np.zeros((30, 27), dtype=np.uint8))
    result = predict([ckpt, "--image", png], tmp_path)
    assert result.returncode == 1
    line = predict_error_line(result)
    assert "27x30" in line and "28x28" in line


@pytest.mark.slow
@pytest.mark.parametrize("content", [b"this is not an image\n", b"", b"\x89PNG\r\n\x1a\ncut"])
def test_a_file_that_is_not_a_png_exits_1(content, ckpt, tmp_path):
    fake = tmp_path / "digit.png"
    fake.write_bytes(content)
    result = predict([ckpt, "--image", fake], tmp_path)
    assert result.returncode == 1
    assert "not a readable PNG" in predict_error_line(result)


@pytest.mark.slow
def test_missing_image_exits_1(ckpt, tmp_path):
    result = predict([ckpt, "--image", tmp_path / "absent.png"], tmp_path)
    assert result.returncode == 1
    assert "does not exist" in predict_error_line(result)


# ------------------------------------------------------------------------------ bad checkpoints
def test_missing_checkpoint_exits_1(tmp_path):
    result = predict([tmp_path / "absent.npz", "--test-index", 0], tmp_path)
    assert result.returncode == 1
    line = predict_error_line(result)
    assert "absent.npz" in line and "does not exist" in line


def test_a_non_checkpoint_file_exits_1(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    result = predict([junk, "--test-index", 0], tmp_path)
    assert result.returncode == 1
    assert "not an xpnet checkpoint" in predict_error_line(result)


def test_a_checkpoint_of_another_shape_exits_1(tmp_path):
    other = tmp_path / "other.npz"
    xpnet.save(xpnet.MLP([4, 3], device="cpu", seed=0), other)
    result = predict([other, "--test-index", 0], tmp_path)
    assert result.returncode == 1
    assert "not an MNIST classifier" in predict_error_line(result)


# ------------------------------------------------------------------------------ usage errors
@pytest.mark.slow
@pytest.mark.parametrize("index", ["10000", "-1"])
def test_test_index_out_of_range_exits_2(index, ckpt, tmp_path):
    result = predict([ckpt, "--test-index", index], tmp_path)
    assert result.returncode == 2
    assert "0..9999" in predict_error_line(result)


@pytest.mark.parametrize("args", [[], ["x.npz"], ["x.npz", "--test-index", "3", "--image", "a"],
                                  ["x.npz", "--test-index", "three"], ["x.npz", "--bogus"]],
                         ids=["nothing", "no-source", "both-sources", "bad-index", "bad-flag"])
def test_usage_errors_exit_2(args, tmp_path):
    result = predict(args, tmp_path)
    assert result.returncode == 2, result.stderr
    predict_error_line(result)


def test_a_sequential_checkpoint_of_another_kind_exits_1(tmp_path):
    """A Sequential (no layer_sizes) that is not an MNIST classifier: one line, exit 1."""
    from xpnet.layers import GELU, Linear

    other = tmp_path / "seq.npz"
    net = xpnet.Sequential([Linear(784, 8), GELU(), Linear(8, 3)], head="sigmoid", device="cpu",
                           seed=0)
    xpnet.save(net, other)
    result = predict([other, "--test-index", 0], tmp_path)
    assert result.returncode == 1
    line = predict_error_line(result)
    assert "not an MNIST classifier" in line and "3 sigmoid outputs" in line
