"""``python -m xpnet.predict`` end to end: a checkpoint trained here by ``python -m xpnet.train``,
then real subprocesses on real MNIST test images and real image files made with Pillow (MNIST
test digits enlarged, inverted, saved as PNG and JPEG, alone, several, in folders). Error paths
use an untrained 784-10 checkpoint, so they need neither MNIST nor training.

The trained tests skip, saying why, when ``XPNET_DATA_DIR`` is unset or lacks the MNIST files.
How pictures are made MNIST-style is tested in depth in tests/test_imaging.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import SUBSET, one_error_line, run_module, run_train, scaler_of

import xpnet
from xpnet.checkpoint import load_checkpoint

SHADES = " .:-=+*#%@"
PROB_LINE = re.compile(r"^  (\d): +(\d+\.\d{4}) ?(#*)$")
TABLE_HEAD = re.compile(r"^image +digit +prob +0 +1 +2 +3 +4 +5 +6 +7 +8 +9$")
TABLE_ROW = re.compile(r"^(.+?) +(\d) +(\d\.\d{4})((?: +\d\.\d{4}){10})$")


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
def untrained(tmp_path_factory) -> Path:
    """An untrained 784-10 softmax model: an MNIST classifier as far as predict can tell, for
    the tests of errors that come before or instead of a prediction."""
    path = tmp_path_factory.mktemp("untrained") / "untrained.npz"
    xpnet.save(xpnet.MLP([784, 10], device="cpu", seed=0), path)
    return path


@pytest.fixture(scope="module")
def by_index0(ckpt, data_dir, tmp_path_factory):
    """``--test-index 0``, run once and shared by the tests that need it."""
    return predict([ckpt, "--test-index", 0], tmp_path_factory.mktemp("index0"), data_dir)


def predict(args, cwd, data_dir=None):
    extra = ["--data-dir", str(data_dir)] if data_dir is not None else []
    return run_module("xpnet.predict", [*args, *extra], cwd=cwd, timeout=120)


def parse(stdout, title=None):
    """(drawing lines, predicted digit, its printed probability, [10 probabilities]) of the
    output for one image; its first line must be ``title`` when given."""
    lines = stdout.splitlines()
    if title is not None:
        assert lines[0] == title
    lines = lines[1:]
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


def parse_table(stdout):
    """[(name, predicted digit, its probability, [10 probabilities])] of the output for several
    images: a header, then one line per image."""
    lines = stdout.splitlines()
    assert TABLE_HEAD.match(lines[0]), lines[0]
    rows = []
    for line in lines[1:]:
        m = TABLE_ROW.match(line)
        assert m, line
        probs = [float(v) for v in m.group(4).split()]
        assert float(m.group(3)) == max(probs) and probs.index(max(probs)) == int(m.group(2))
        rows.append((m.group(1), int(m.group(2)), float(m.group(3)), probs))
    return rows


def expected_proba(ckpt_path, image):
    """The model's probabilities for a 28x28 uint8 image (or (n, 28, 28) images: (n, 10)),
    computed in-process."""
    net, state = load_checkpoint(ckpt_path, device="cpu")
    X = scaler_of(net, state).transform(image.reshape(-1, 784), net.dtype)
    proba = np.asarray(net.predict_proba(X))
    return proba[0] if image.ndim == 2 else proba


def prepared(path):
    """The 28x28 image predict makes of the file ``path``, computed in-process."""
    from xpnet.imaging import mnist_style, read_image

    return mnist_style(read_image(path))


def draw_rows(image):
    """The 28 lines predict draws for a (28, 28) uint8 image."""
    return ["".join(SHADES[int(v) * len(SHADES) // 256] * 2 for v in row) for row in image]


def on_paper(digit, path, size=(200, 150), digit_px=120, at=(50, 10), **save):
    """Save an MNIST digit (28, 28) as a photo-like picture: scaled up to ``digit_px`` square,
    dark ink on a white page of ``size`` (width, height), at ``at``; RGB, so JPEG can take it."""
    from PIL import Image

    big = Image.fromarray(255 - digit).resize((digit_px, digit_px), Image.BICUBIC)
    page = Image.new("L", size, 255)
    page.paste(big, at)
    page.convert("RGB").save(path, **save)
    return path


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
    drawing, pred, p_pred, probs = parse(result.stdout, title=f"MNIST test image {index}")
    image = mnist.X_test[index].reshape(28, 28)
    # 28 rows of 56 characters; background pixels are blank, ink is not
    assert [len(row) for row in drawing] == [56] * 28
    for r in range(28):
        for c in range(28):
            ch = drawing[r][2 * c]
            assert ch == drawing[r][2 * c + 1] and ch in SHADES
            assert (ch == " ") == (int(image[r, c]) * len(SHADES) < 256)
    assert f"(true label {mnist.y_test[index]})" in result.stdout.splitlines()[29]
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
    """A 28x28 MNIST digit saved as a PNG is MNIST-style already: the same prediction as by
    its index (up to the stretch of its strongest pixel from 254 to 255, and PNG colours)."""
    index = 0
    image = mnist.X_test[index].reshape(28, 28)
    png = tmp_path / "digit.png"
    write_png(png, image if ink == "light-on-dark" else 255 - image)
    assert png.read_bytes()[:4] == b"\x89PNG"

    by_index = by_index0
    by_image = predict([ckpt, "--image", png], tmp_path)
    assert by_index.returncode == 0 and by_image.returncode == 0, by_image.stderr
    _, pred_index, _, probs_index = parse(by_index.stdout)
    kind = ("dark digit on a light background (inverted)" if ink == "dark-on-light"
            else "light digit on a dark background")
    drawing, pred_image, _, probs_image = parse(by_image.stdout,
                                                title=f"{png}: 28x28 pixels, {kind}")
    assert pred_image == pred_index
    np.testing.assert_allclose(probs_image, probs_index, atol=5e-3)
    assert "true label" not in by_image.stdout
    assert drawing[0].strip() == ""  # the corner is background after any inversion


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_a_photo_sized_dark_digit_predicts_like_its_test_index(fmt, ckpt, mnist, by_index0,
                                                              tmp_path):
    """Test digit 0 enlarged to 120 px in dark ink on a 200x150 white page: drawn as MNIST
    would have it, the same digit predicted as by its index, and exactly the probabilities of
    the in-process ``mnist_style`` image."""
    picture = on_paper(mnist.X_test[0].reshape(28, 28), tmp_path / f"seven.{fmt}")
    result = predict([ckpt, "--image", picture], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    title = f"{picture}: 200x150 pixels, dark digit on a light background (inverted)"
    drawing, pred, _, probs = parse(result.stdout, title=title)
    _, pred_index, _, _ = parse(by_index0.stdout)
    assert pred == pred_index
    image = prepared(picture)
    np.testing.assert_allclose(probs, expected_proba(ckpt, image), atol=6e-5)
    assert drawing == draw_rows(image)


@pytest.mark.slow
def test_several_images_and_folders_get_one_line_each(ckpt, mnist, tmp_path):
    """Eight enlarged test digits, five in a folder (with files that are not images) and
    three named: one line each, folder files sorted by name, every probability as in-process,
    and (nearly) every predicted digit as for the original MNIST image."""
    digits = tmp_path / "digits"
    digits.mkdir()
    names = {}
    for index in range(8):
        where = digits if index < 5 else tmp_path
        ext = ["png", "jpg", "bmp"][index % 3]
        path = on_paper(mnist.X_test[index].reshape(28, 28), where / f"d{7 - index}.{ext}")
        names[index] = path
    (digits / "notes.txt").write_text("not an image")
    (digits / ".hidden.png").write_bytes(b"not an image either")
    (digits / "sub").mkdir()
    extra = [names[5], names[6], names[7]]
    result = predict([ckpt, "--image", names[5], f"{digits}{os.sep}", names[6], names[7]],
                     tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = parse_table(result.stdout)
    in_folder = [os.path.join(f"{digits}{os.sep}", f"d{7 - i}.{['png', 'jpg', 'bmp'][i % 3]}")
                 for i in (4, 3, 2, 1, 0)]  # sorted by name: d3 .. d7
    assert [r[0] for r in rows] == [str(extra[0]), *in_folder, str(extra[1]), str(extra[2])]
    order = [5, 4, 3, 2, 1, 0, 6, 7]
    images = np.stack([prepared(names[i]) for i in order])
    want = expected_proba(ckpt, images)
    for (_, pred, _, probs), w in zip(rows, want):
        assert pred == int(w.argmax())
        np.testing.assert_allclose(probs, w, atol=6e-5)
    originals = expected_proba(ckpt, mnist.X_test[order].reshape(-1, 28, 28)).argmax(axis=1)
    # 98% of enlarged test digits are predicted as their originals (300 measured): allow one
    assert sum(r[1] == o for r, o in zip(rows, originals)) >= 7


@pytest.mark.slow
def test_a_folder_with_one_image_draws_it(ckpt, mnist, tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    picture = on_paper(mnist.X_test[1].reshape(28, 28), folder / "two.png")
    result = predict([ckpt, "--image", folder], tmp_path)
    assert result.returncode == 0, result.stderr
    parse(result.stdout, title=f"{picture}: 200x150 pixels, dark digit on a light background "
                               f"(inverted)")


# ------------------------------------------------------------------------------ bad images
def test_a_bad_image_among_several_stops_the_run_naming_it(untrained, tmp_path):
    """Every image is checked before anything is printed: one line naming the bad one, exit 1,
    nothing on stdout."""
    from PIL import Image

    good, bad = tmp_path / "good.png", tmp_path / "bad.jpg"
    img = Image.new("L", (40, 40), 0)
    img.paste(255, (10, 5, 30, 35))  # a white bar: good enough to be classified
    img.save(good)
    bad.write_bytes(b"not a jpeg")
    result = predict([untrained, "--image", good, bad, good], tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    line = predict_error_line(result)
    assert line == (f"xpnet.predict: error: {bad} is not a readable image (not in a format "
                    f"Pillow reads); give a PNG, JPEG or another common image format")


@pytest.mark.parametrize("content", [b"this is not an image\n", b"", b"\x89PNG\r\n\x1a\ncut"])
def test_a_file_that_is_not_an_image_exits_1(content, untrained, tmp_path):
    fake = tmp_path / "digit.png"
    fake.write_bytes(content)
    result = predict([untrained, "--image", fake], tmp_path)
    assert result.returncode == 1
    assert f"{fake} is not a readable image" in predict_error_line(result)


def test_a_blank_image_exits_1(untrained, tmp_path):
    from PIL import Image

    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (640, 480), "white").save(blank)
    result = predict([untrained, "--image", blank], tmp_path)
    assert result.returncode == 1
    line = predict_error_line(result)
    assert line.startswith(f"xpnet.predict: error: {blank} is blank: ")
    assert "give a picture of a digit" in line


def test_an_image_over_the_pixel_cap_exits_1_undecoded(untrained, tmp_path):
    """A valid 9000x9000 PNG (81 megapixels in a few KB): refused from its header."""
    import zlib

    from PIL import Image

    Image.new("1", (1, 1)).save(tmp_path / "tiny.png")  # a real PNG to take the chunks from
    tiny = (tmp_path / "tiny.png").read_bytes()
    assert tiny[12:16] == b"IHDR"
    ihdr = b"IHDR" + (9000).to_bytes(4, "big") * 2 + tiny[24:29]
    body = zlib.compress(bytes(1 + (9000 + 7) // 8) * 9000, 9)  # all rows black

    def chunk(data):
        return (len(data) - 4).to_bytes(4, "big") + data + zlib.crc32(data).to_bytes(4, "big")

    big = tmp_path / "big.png"
    big.write_bytes(tiny[:8] + chunk(ihdr) + chunk(b"IDAT" + body) + chunk(b"IEND"))
    assert big.stat().st_size < 50_000
    result = predict([untrained, "--image", big], tmp_path)
    assert result.returncode == 1
    assert predict_error_line(result) == (
        f"xpnet.predict: error: {big} is 9000x9000 pixels (81.0 megapixels), more than the 40 "
        f"megapixels read; scale it down or crop it to the digit")


def test_missing_image_exits_1(untrained, tmp_path):
    result = predict([untrained, "--image", tmp_path / "absent.png"], tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'absent.png'} does not exist" in predict_error_line(result)


def test_a_folder_without_images_exits_1(untrained, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    result = predict([untrained, "--image", empty], tmp_path)
    assert result.returncode == 1
    line = predict_error_line(result)
    assert f"the folder {empty} holds no image files" in line


# ------------------------------------------------------------------------------ bad checkpoints
def test_missing_checkpoint_says_how_to_make_one(tmp_path):
    absent = tmp_path / "runs" / "mnist.npz"
    result = predict([absent, "--test-index", 0], tmp_path)
    assert result.returncode == 1
    assert predict_error_line(result) == (
        f"xpnet.predict: error: {absent} does not exist; train and save a model first: "
        f"python -m xpnet.train --save {absent}")


def test_missing_checkpoint_is_reported_before_images_are_read(tmp_path):
    result = predict(["my model.npz", "--image", tmp_path / "absent.png"], tmp_path)
    assert result.returncode == 1
    assert predict_error_line(result).endswith(
        "my model.npz does not exist; train and save a model first: python -m xpnet.train "
        "--save 'my model.npz'")


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
@pytest.mark.parametrize("index", ["10000", "-1"])
def test_test_index_out_of_range_exits_2(index, untrained, tmp_path):
    result = predict([untrained, "--test-index", index], tmp_path)
    assert result.returncode == 2
    assert "0..9999" in predict_error_line(result)


@pytest.mark.parametrize("args", [[], ["x.npz"], ["x.npz", "--test-index", "3", "--image", "a"],
                                  ["x.npz", "--test-index", "three"], ["x.npz", "--bogus"],
                                  ["x.npz", "--image"], ["x.npz", "--image", ""]],
                         ids=["nothing", "no-source", "both-sources", "bad-index", "bad-flag",
                              "image-without-path", "empty-path"])
def test_usage_errors_exit_2(args, tmp_path):
    result = predict(args, tmp_path)
    assert result.returncode == 2, result.stderr
    predict_error_line(result)


def test_a_checkpoint_after_the_images_gets_a_hint(tmp_path):
    result = predict(["--image", "a.png", "b.png", "x.npz"], tmp_path)
    assert result.returncode == 2
    assert "put the checkpoint first: CHECKPOINT --image PATH..." in predict_error_line(result)


def test_help_explains_every_flag_and_shows_each_default_once(tmp_path):
    result = predict(["--help"], tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    from xpnet.predict import build_parser

    for action in build_parser()._actions:
        assert action.help, action.option_strings
    text = " ".join(result.stdout.split())  # argparse wraps lines where it likes
    for flag in ("--test-index N", "--image PATH [PATH ...]", "--data-dir DIR", "--device",
                 "--debug"):
        assert flag in text
    # --data-dir and --device state their defaults once, in their own words
    assert text.count("default:") == 2
    assert "(default: $XPNET_DATA_DIR, then ~/.cache/xpnet/mnist)" in text
    assert "(default: cpu, which is fastest for a few images)" in text
    assert "fit 20x20" in text and "centred by centre of mass" in text


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


def test_a_fashion_mnist_model_names_its_classes(tmp_path):
    """A model whose checkpoint says it was trained on Fashion-MNIST prints the class names
    (the probabilities are those of the untrained net on the prepared picture)."""
    from PIL import Image

    from xpnet.checkpoint import nest_states
    from xpnet.data import DATASETS

    path = tmp_path / "fashion.npz"
    source = {"dataset": "fashion-mnist", "data": None, "task": "classification",
              "kind": "image", "classes": list(range(10))}
    xpnet.save(xpnet.MLP([784, 10], device="cpu", seed=0), path,
               training_state=nest_states(run={"json": {"source": source}, "arrays": {}}))
    picture = tmp_path / "shirt.png"
    canvas = np.zeros((60, 60), dtype=np.uint8)
    canvas[10:50, 15:45] = 255
    Image.fromarray(canvas).save(picture)
    result = predict([path, "--image", picture], tmp_path)
    assert result.returncode == 0, result.stderr
    names = DATASETS["fashion-mnist"].classes
    line = next(s for s in result.stdout.splitlines() if s.startswith("predicted class: "))
    pred = int(line.split()[2])
    assert line.startswith(f"predicted class: {pred} ({names[pred]})   probability ")
    listed = [s for s in result.stdout.splitlines() if re.match(r"^  \d [^:]+: ", s)]
    assert [s.split(":")[0].split(None, 1)[1].strip() for s in listed] == list(names)


def test_a_fashion_mnist_model_names_its_classes_in_the_table_of_several_images(tmp_path):
    """Several pictures give the table; a Fashion-MNIST model's predicted classes are named
    there too (index and name), under a "class" column."""
    from PIL import Image

    from xpnet.checkpoint import nest_states
    from xpnet.data import DATASETS

    path = tmp_path / "fashion.npz"
    source = {"dataset": "fashion-mnist", "data": None, "task": "classification",
              "kind": "image", "classes": list(range(10))}
    xpnet.save(xpnet.MLP([784, 10], device="cpu", seed=0), path,
               training_state=nest_states(run={"json": {"source": source}, "arrays": {}}))
    pictures = []
    for i, box in enumerate([(10, 50, 15, 45), (5, 30, 5, 55)]):
        canvas = np.zeros((60, 60), dtype=np.uint8)
        canvas[box[0]:box[1], box[2]:box[3]] = 255
        pictures.append(tmp_path / f"item{i}.png")
        Image.fromarray(canvas).save(pictures[-1])
    result = predict([path, "--image", *pictures], tmp_path)
    assert result.returncode == 0, result.stderr
    names = DATASETS["fashion-mnist"].classes
    head, *rows = result.stdout.splitlines()
    assert head.split()[:3] == ["image", "class", "prob"]
    assert len(rows) == 2
    for row in rows:
        probabilities = [float(v) for v in row.split()[-10:]]
        pred = int(np.argmax(probabilities))
        assert f"  {pred} {names[pred]}  " in row, row
