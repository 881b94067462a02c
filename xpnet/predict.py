"""``python -m xpnet.predict CHECKPOINT``: classify handwritten digits with a trained model.

    python -m xpnet.predict runs/mnist.npz --test-index 7
    python -m xpnet.predict runs/mnist.npz --image photo_of_a_7.jpg
    python -m xpnet.predict runs/mnist.npz --image a.png b.jpg digits/
    python -m xpnet.predict runs/table.npz --data rows.csv --out predictions.csv

Sources (exactly one):

* ``--test-index N``: MNIST test image N (the 10000 test images are the only data read).
* ``--data ROWS``: a ``.csv``/``.npz`` table of rows, for a model trained with ``xpnet.train
  --data``; see :func:`predict_rows`.
* ``--image PATH...``: image files of any size and either polarity, in any common format
  Pillow reads (PNG, JPEG, BMP, GIF, TIFF, WebP, ...), and folders: a folder stands for the
  image files directly inside it (by extension, hidden files skipped), sorted by name. Each
  picture is made MNIST-style by :func:`xpnet.imaging.prepare`: grey, inverted if the ink is
  dark on light paper, cropped to the ink, scaled to fit 20x20 keeping its aspect ratio and
  centred by centre of mass in 28x28.

Output: for one image, a block: a title line (the file and what was done to it, or the MNIST
test image), the 28x28 digit drawn in the terminal as the model sees it, the predicted digit
with its probability (and the true label for ``--test-index``), then every class probability
with a bar. For several images, one line each under a header: the path, the predicted digit,
its probability and the ten class probabilities.

Every image is read and prepared before anything is printed, so a bad one (missing, not an
image, blank, too large) stops the run with one line naming it, exit code 1, and no partial
output. The input is scaled with the statistics saved in the checkpoint by ``xpnet.train``.

Only what is needed is read: the network and the input scaler from the checkpoint (never the
trainer's state), the test images for ``--test-index``, and for an image at most
:data:`xpnet.imaging.MAX_IMAGE_BYTES` (50 MiB) of file whose width x height (from its header)
is checked against :data:`xpnet.imaging.MAX_IMAGE_PIXELS` (40 megapixels) before any pixel is
decoded.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass

import numpy as np

from .cli import (
    EXIT_OK,
    Failure,
    Parser,
    UsageError,
    check_writable,
    csv_safe,
    printable,
    run,
    same_file,
)

PROG = "xpnet.predict"
# The model record's arrays (and the scaler of checkpoints from before the model record):
# predicting never reads the trainer's state.
MODEL_PREFIXES = ("model/", "scaler/")
_SHADES = " .:-=+*#%@"
_BATCH = 4096  # images per forward pass

_EPILOG = """\
examples:
  python -m xpnet.predict runs/mnist.npz --test-index 7
  python -m xpnet.predict runs/mnist.npz --image my_digit.jpg
  python -m xpnet.predict runs/mnist.npz --image a.png b.png digits/
  python -m xpnet.predict runs/table.npz --data rows.csv --out predictions.csv

One image is drawn as the model sees it, with all ten probabilities; several get one line each.
Images of any size are prepared like MNIST: grey, inverted when the ink is dark, cropped to the
ink, scaled to fit 20x20 and centred by centre of mass in 28x28 (see xpnet/imaging.py)."""


@dataclass(frozen=True)
class Example:
    """One input to classify: ``image`` is (28, 28) uint8, light digit on black; ``title`` what
    to call it; ``label`` the true digit when known; ``note`` what was done to it, if anything."""

    title: str
    image: np.ndarray
    label: int | None = None
    note: str = ""


def build_parser() -> Parser:
    p = Parser(prog=PROG, description="Classify handwritten digits with a model saved by "
               "python -m xpnet.train --save.", epilog=_EPILOG)
    p.add_argument("checkpoint", help="the .npz written by python -m xpnet.train --save")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--test-index", type=int, metavar="N",
                     help="classify MNIST test image N (0..9999) and show its true label")
    src.add_argument("--image", nargs="+", metavar="PATH",
                     help="image files (PNG, JPEG, BMP, GIF, TIFF, WebP, ...; any size, dark or "
                          "light ink) and folders of them (the image files directly inside, "
                          "sorted by name); put them after the checkpoint")
    src.add_argument("--data", metavar="ROWS",
                     help="a .csv (header row) or .npz (array X) of rows to predict with a model "
                          "trained by xpnet.train --data: the feature columns it was trained on, "
                          "in any order; a target column is ignored")
    p.add_argument("--out", metavar="PATH.csv",
                   help="with --data: write the predictions to this CSV file (atomically; "
                        "missing folders are created) instead of printing them")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="MNIST folder for --test-index (default: $XPNET_DATA_DIR, then "
                        "~/.cache/xpnet/mnist)")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N (default: cpu, "
                   "which is fastest for a few images)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


def draw(image: np.ndarray) -> str:
    """A (28, 28) uint8 image as text, two characters per pixel so it keeps its aspect."""
    levels = (image.astype(np.int64) * len(_SHADES)) // 256
    return "\n".join("".join(_SHADES[v] * 2 for v in row) for row in levels)


# ---------------------------------------------------------------------------------- sources
def mnist_test_image(index: int, data_dir, dataset: str = "mnist") -> list[Example]:
    """Test image ``index`` (0..9999) of the IDX ``dataset`` the model was trained on (MNIST,
    Fashion-MNIST or KMNIST) with its label."""
    from .data import DATASETS, MnistDataError, load_dataset

    try:
        data = load_dataset(dataset, data_dir, splits=("test",))
    except MnistDataError as exc:
        raise Failure(str(exc)) from exc
    return [Example(f"{DATASETS[dataset].title} test image {index}",
                    data.X_test[index].reshape(28, 28), int(data.y_test[index]))]


def image_paths(args: list[str]) -> list[str]:
    """The files named by ``--image``: a file as given, a folder replaced by the image files
    directly inside it (:func:`xpnet.imaging.image_files`: by extension, sorted by name)."""
    from .imaging import FORMATS, image_files

    paths: list[str] = []
    for arg in args:
        if not os.path.isdir(arg):
            paths.append(arg)
            continue
        try:
            found = image_files(arg)
        except OSError as exc:
            raise Failure(f"cannot list the folder {arg} ({exc.strerror or exc}); check its "
                          f"permissions") from None
        if not found:
            raise Failure(f"the folder {arg} holds no image files (looked for "
                          f"{', '.join(FORMATS[:6])}, ... by extension); give image files or "
                          f"a folder of them")
        paths.extend(os.path.join(arg, p.name) for p in found)
    return paths


def read_image(path) -> Example:
    """The image file ``path`` prepared MNIST-style (:func:`xpnet.imaging.prepare`); any
    problem is a :class:`~xpnet.cli.Failure` naming the file."""
    try:
        from .imaging import ImageError, prepare
        from .imaging import read_image as read_picture
    except ImportError:
        raise Failure("--image needs Pillow to read images: pip install -e '.[train]'"
                      ) from None
    try:
        picture = read_picture(path)
        try:
            prepared = prepare(picture, name=str(path))
        finally:
            picture.close()
    except ImageError as exc:
        raise Failure(str(exc)) from None
    except MemoryError:
        raise Failure(f"{path} is too large to prepare in the memory available; scale it down "
                      f"or crop it to the digit") from None
    return Example(str(path), prepared.image, note=prepared.describe())


def _examples(args) -> list[Example]:
    """The inputs named on the command line, each prepared as a 28x28 MNIST-style image."""
    if args.image is not None:
        return [read_image(path) for path in image_paths(args.image)]
    return mnist_test_image(args.test_index, args.data_dir, getattr(args, "dataset", "mnist"))


# ---------------------------------------------------------------------------------- output
def _shown(text: str) -> str:
    """``text`` with control characters escaped, so a file name cannot break the layout."""
    return printable(text)


def print_block(example: Example, proba: np.ndarray, names=None) -> None:
    """One input at length: title, drawing, predicted digit, the ten probabilities (10,).
    ``names``: the classes' display names of a Fashion-MNIST or KMNIST model (None: digits)."""
    pred = int(proba.argmax())
    title = _shown(example.title) + (f": {example.note}" if example.note else "")
    print(title)
    print(draw(example.image))
    truth = "" if example.label is None else f"   (true label {example.label})"
    if names is None:
        print(f"predicted digit: {pred}   probability {proba[pred]:.4f}{truth}")
    else:
        print(f"predicted class: {pred} ({names[pred]})   probability {proba[pred]:.4f}{truth}")
    width = max(map(len, names)) if names else 0
    for digit, p in enumerate(proba):
        bar = "#" * int(round(p * 40))
        name = f" {names[digit]:<{width}}" if names else ""
        print(f"  {digit}{name}: {p:7.4f} {bar}")


def print_table(examples: list[Example], proba: np.ndarray, classes=None) -> None:
    """One line per input under a header: name, predicted class, its probability, the true
    label when any is known, and the ten probabilities; ``proba`` is (len(examples), 10).
    ``classes``: the display names of a Fashion-MNIST or KMNIST model's classes, shown for the
    predicted and true labels (None: digits, shown as themselves)."""
    names = [_shown(e.title) for e in examples]
    width = max(len("image"), *map(len, names))
    labels = any(e.label is not None for e in examples)

    def shown(label):
        return str(label) if classes is None else f"{label} {classes[label]}"

    col = 5 if classes is None else max(len(shown(c)) for c in range(len(classes)))
    true_col = 4 if classes is None else col
    title = "digit" if classes is None else "class"
    head = (f"{'image':<{width}}  {title:>{col}}    prob"
            + (f"  {'true':>{true_col}}" if labels else ""))
    print(head + "  " + " ".join(f"{d:>6}" for d in range(10)))
    for name, example, p in zip(names, examples, proba):
        pred = int(p.argmax())
        line = f"{name:<{width}}  {shown(pred):>{col}}  {p[pred]:.4f}"
        if labels:
            line += f"  {'' if example.label is None else shown(example.label):>{true_col}}"
        print(line + "  " + " ".join(f"{v:6.4f}" for v in p))


# ---------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    return run(_main, argv, PROG)


def _load_model(path, device, table=False):
    """The :class:`~xpnet.Model` in checkpoint ``path`` and the checkpoint's run state (JSON
    only), or a Failure; an MNIST-like classifier unless ``table``."""
    if not os.path.exists(path):
        raise Failure(f"{path} does not exist; train and save a model first: python -m "
                      f"xpnet.train --save {shlex.quote(str(path))}")
    from .checkpoint import CheckpointError, load_checkpoint
    from .model import Model, ModelRecordError

    try:
        net, state = load_checkpoint(path, device=device, read_state=MODEL_PREFIXES)
        model = Model.from_state(net, state)
    except CheckpointError as exc:
        raise Failure(str(exc)) from exc
    except ModelRecordError as exc:
        raise Failure(f"{path}: {exc}; re-train and save it") from None
    if model is None:  # a bare network (xpnet.save): pixels 0..255 scaled to [0, 1]
        from .preprocessing import Scaler
        from .schema import InputSchema
        from .targets import Target

        if table:
            raise Failure(f"{path} holds a bare network (saved by xpnet.save), not a model "
                          f"trained on a table, so it cannot predict --data rows; train one "
                          f"with python -m xpnet.train --data FILE --save MODEL (or save an "
                          f"xpnet.Model)")
        if net.head.name == "softmax" and net.n_features_in == 784:
            scaler = Scaler("unit").fit(np.array([0, 255], dtype=np.uint8))
            inputs = InputSchema.pixels(784, scaler)
            model = Model(net, inputs, Target("classification",
                                              classes=list(range(net.n_outputs))))
    if table:
        return model, state
    if net.n_features_in != 784 or net.n_outputs != 10 or net.head.name != "softmax":
        raise Failure(f"{path} is not an MNIST classifier (input {net.n_features_in}, "
                      f"{net.n_outputs} {net.head.name} outputs); it needs 784 inputs and 10 "
                      f"softmax outputs")
    return model, state


def _class_names(dataset):
    """Display names of the classes of an IDX dataset other than MNIST (whose are its digits)."""
    from .data import DATASETS

    return None if dataset == "mnist" else list(DATASETS[dataset].classes)


def _trained_on(state) -> str:
    """The IDX dataset a checkpoint of xpnet.train was trained on (MNIST when it does not say,
    as checkpoints from before --dataset)."""
    from .data import DATASETS

    source = ((state or {}).get("json", {}).get("run") or {}).get("source")
    name = source.get("dataset") if isinstance(source, dict) else None
    return name if name in DATASETS else "mnist"


def probabilities(model, images: np.ndarray) -> np.ndarray:
    """Class probabilities (n, 10) float64 on the host for (n, 28, 28) uint8 images."""
    return model.predict_proba(images.reshape(len(images), 784))


def parse_args(argv):
    """The command line, checked; a checkpoint swallowed by ``--image`` gets its own hint."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        tokens = sys.argv[1:] if argv is None else list(argv)
        if "required: checkpoint" in str(exc) and "--image" in tokens:
            raise UsageError("the checkpoint is missing; --image takes every path after it, so "
                             "put the checkpoint first: CHECKPOINT --image PATH...") from None
        raise
    if args.image is not None and "" in args.image:
        raise UsageError("--image got an empty path; give image files or folders")
    if args.out is not None:
        if args.data is None:
            raise UsageError("--out writes the predictions for --data rows; --image and "
                             "--test-index print theirs")
        if same_file(args.out, args.data) or same_file(args.out, args.checkpoint):
            raise UsageError(f"--out {args.out} is an input of this run, which it would "
                             f"overwrite; choose another file")
        check_writable("--out", args.out)
    if args.test_index is not None and not 0 <= args.test_index <= 9999:
        raise UsageError(f"--test-index must be in 0..9999; got {args.test_index}")
    return args


def _main(argv) -> int:
    args = parse_args(argv)
    if args.data is not None:
        return predict_rows(args)
    model, state = _load_model(args.checkpoint, args.device)
    args.dataset = _trained_on(state)
    examples = _examples(args)  # all read and checked before anything is printed
    proba = probabilities(model, np.stack([e.image for e in examples]))
    if len(examples) == 1:
        print_block(examples[0], proba[0], _class_names(args.dataset))
    else:
        print_table(examples, proba, _class_names(args.dataset))
    return EXIT_OK


# ---------------------------------------------------------------------------------- rows
def predict_rows(args) -> int:
    """``--data ROWS``: predictions of a model trained on a table, one per row, as CSV on
    stdout or in ``--out``: the original label and the probability of each class
    (``p_<label>`` columns) for a classifier, the value in the target's units for regression;
    the model's id column, when the rows have it, comes first. Columns are matched to the
    model's by name (any order), encoded by its input schema; a target column is ignored."""
    from .data import DataError, load_frame

    path = args.checkpoint
    model, state = _load_model(path, args.device, table=True)
    source = ((state or {}).get("json", {}).get("run") or {}).get("source")
    kind = source.get("kind") if isinstance(source, dict) else None
    # A model saved from Python (Model.save) has a model record and no run source.
    if kind != "table" and not (kind is None and "model" in (state or {}).get("json", {})):
        trained_on = (source or {}).get("dataset") or "MNIST"
        raise Failure(f"{path} was trained on {trained_on} images, not on a table, so it cannot "
                      f"predict --data rows; use --image or --test-index, or train on your "
                      f"table with python -m xpnet.train --data FILE --save MODEL")
    target = model.target
    try:
        rows = load_frame(args.data, target=target.name, require_target=False)
        if target.is_classifier:
            values = model.predict_proba(rows.frame)
        else:
            values = model.predict(rows.frame)
    except DataError as exc:
        raise Failure(str(exc)) from exc
    ids = model.inputs.ids(rows.frame)
    id_header = [model.id_column] if ids is not None else []
    if target.is_classifier:
        header = [*id_header, "prediction", *(f"p_{c}" for c in target.classes)]
        lines = [[target.classes[int(i)], *(f"{p:.6g}" for p in row)]
                 for i, row in zip(values.argmax(axis=1), values)]
    else:
        header = [*id_header, f"predicted_{target.name or 'value'}"]
        lines = [[f"{v:.8g}"] for v in values]
    if ids is not None:
        lines = [[_cell(i), *line] for i, line in zip(ids, lines)]
    _write_rows(args.out, header, lines)
    if args.out:
        print(f"wrote {len(lines)} predictions to {args.out}")
    return EXIT_OK


def _cell(value) -> str:
    """An id value as it was written: text as is, a whole number without ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else (str(int(value)) if value.is_integer() else repr(value))
    return str(value)


def _write_rows(out, header, rows) -> None:
    """CSV to ``out`` (atomically) or to stdout."""
    import csv

    from .io import atomic_write

    header = [csv_safe(cell) for cell in header]
    rows = [[csv_safe(cell) for cell in row] for row in rows]
    if out is None:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return
    try:
        with atomic_write(out, "w") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as exc:
        raise Failure(f"cannot write {out}: {exc.strerror or exc}") from exc


if __name__ == "__main__":
    sys.exit(main())
