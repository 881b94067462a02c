"""``python -m xpnet.predict CHECKPOINT``: classify one digit with a trained model.

    python -m xpnet.predict runs/mnist.npz --test-index 7
    python -m xpnet.predict runs/mnist.npz --image my_digit.png

Prints the digit drawn in the terminal, the predicted class and every class probability. The
input is scaled with the statistics saved in the checkpoint by ``xpnet.train``. A PNG should be
a 28x28 greyscale digit; light digits on a dark background are used as they are, dark digits on
a light background are inverted to match MNIST.
"""

from __future__ import annotations

import sys

import numpy as np

from .cli import EXIT_OK, Failure, Parser, UsageError, run
from .preprocessing import Scaler

PROG = "xpnet.predict"
_SHADES = " .:-=+*#%@"


def build_parser() -> Parser:
    p = Parser(prog=PROG, description="Classify an MNIST digit with a saved xpnet model.")
    p.add_argument("checkpoint", help="a .npz written by xpnet.train --save")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--test-index", type=int, metavar="N", help="an MNIST test image, 0..9999")
    src.add_argument("--image", metavar="FILE.png", help="a 28x28 greyscale PNG")
    p.add_argument("--data-dir", default=None, help="MNIST directory for --test-index")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N (default: cpu, "
                   "which is fastest for one image)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def draw(image: np.ndarray) -> str:
    """A 28x28 uint8 image as text, two characters per pixel so it keeps its aspect."""
    levels = (image.astype(np.int64) * len(_SHADES)) // 256
    return "\n".join("".join(_SHADES[v] * 2 for v in row) for row in levels)


def read_png(path) -> np.ndarray:
    """A PNG as a 28x28 uint8 array, light digit on dark background like MNIST."""
    try:
        import matplotlib.image as mpimg
    except ImportError:
        raise Failure("--image needs matplotlib to read PNG files: pip install 'xpnet[plot]'"
                      ) from None
    try:
        img = np.asarray(mpimg.imread(path), dtype=np.float64)
    except FileNotFoundError:
        raise Failure(f"{path} does not exist") from None
    except Exception as exc:
        raise Failure(f"{path} is not a readable PNG image ({type(exc).__name__})") from None
    if img.ndim == 3:  # RGB(A): luminance, ignoring alpha
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114])
    if img.max() <= 1.0:
        img = img * 255.0
    if img.shape != (28, 28):
        raise Failure(f"{path} is {img.shape[1]}x{img.shape[0]} pixels; resize it to 28x28")
    if img.mean() > 127:  # dark ink on light paper: invert to MNIST's convention
        img = 255.0 - img
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def main(argv=None) -> int:
    return run(_main, argv, PROG)


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError, load_checkpoint, sub_state

    try:
        net, state = load_checkpoint(args.checkpoint, device=args.device)
    except CheckpointError as exc:
        raise Failure(str(exc)) from exc
    if net.n_features_in != 784 or net.n_outputs != 10 or net.head.name != "softmax":
        raise Failure(f"{args.checkpoint} is not an MNIST classifier (input "
                      f"{net.n_features_in}, {net.n_outputs} {net.head.name} outputs); it needs "
                      f"784 inputs and 10 softmax outputs")

    label = None
    if args.image:
        image = read_png(args.image)
    else:
        from .data import MnistDataError, load_mnist

        if not 0 <= args.test_index <= 9999:
            raise UsageError(f"--test-index must be in 0..9999; got {args.test_index}")
        try:
            data = load_mnist(args.data_dir)
        except MnistDataError as exc:
            raise Failure(str(exc)) from exc
        image = data.X_test[args.test_index].reshape(28, 28)
        label = int(data.y_test[args.test_index])

    if state is not None and "scaler" in state["json"]:
        scaler = Scaler.from_state(sub_state(state, "scaler"))
    else:
        scaler = Scaler("unit").fit(np.array([0, 255], dtype=np.uint8))
    x = scaler.transform(image.reshape(1, 784), net.dtype)
    proba = net.device.to_numpy(net.predict_proba(x))[0]
    pred = int(proba.argmax())

    print(draw(image))
    truth = "" if label is None else f"   (true label {label})"
    print(f"predicted digit: {pred}   probability {proba[pred]:.4f}{truth}")
    for digit, p in enumerate(proba):
        bar = "#" * int(round(p * 40))
        print(f"  {digit}: {p:7.4f} {bar}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
