"""``python -m xpnet.predict CHECKPOINT``: classify one digit with a trained model.

    python -m xpnet.predict runs/mnist.npz --test-index 7
    python -m xpnet.predict runs/mnist.npz --image my_digit.png

Prints the digit drawn in the terminal, the predicted class and every class probability. The
input is scaled with the statistics saved in the checkpoint by ``xpnet.train``. A PNG should be
a 28x28 greyscale digit; light digits on a dark background are used as they are, dark digits on
a light background are inverted to match MNIST.

Only what is needed is read: the network and the input scaler from the checkpoint (never the
trainer's state), the 10000 test images for ``--test-index``, and for ``--image`` at most
1 MiB of PNG whose size (from its header) is checked before any pixel is decoded (Pillow).
"""

from __future__ import annotations

import io
import sys

import numpy as np

from .cli import EXIT_OK, Failure, Parser, UsageError, run
from .io import FileTooLargeError, SpecialFileError, read_capped
from .preprocessing import Scaler

PROG = "xpnet.predict"
SCALER_PREFIX = "scaler/"  # the input scaler's arrays in a checkpoint written by xpnet.train
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


MAX_PNG_BYTES = 1 << 20  # a 28x28 PNG takes a few KB; more is refused unread
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_LUMA = np.array([0.299, 0.587, 0.114])


def read_png(path) -> np.ndarray:
    """A PNG as a 28x28 uint8 array, light digit on dark background like MNIST.

    Bounded: at most :data:`MAX_PNG_BYTES` are read, and the width and height in the PNG's
    header are checked before Pillow decodes any pixel, so a huge image costs nothing."""
    try:
        from PIL import Image
    except ImportError:
        raise Failure("--image needs Pillow to read PNG files: pip install 'xpnet[train]'"
                      ) from None
    try:
        data = read_capped(path, MAX_PNG_BYTES)
    except FileNotFoundError:
        raise Failure(f"{path} does not exist") from None
    except FileTooLargeError as exc:
        raise Failure(f"{path} holds {exc.size_text} bytes, more than the {MAX_PNG_BYTES} a "
                      f"28x28 PNG may take; give a 28x28 greyscale PNG") from None
    except SpecialFileError as exc:
        raise Failure(f"{path} is {exc.kind}, not a regular file; give a 28x28 PNG file"
                      ) from None
    except OSError as exc:
        raise Failure(f"cannot read {path} ({exc.strerror or exc})") from None
    # The IHDR chunk comes first: length, "IHDR", width, height (big-endian).
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR" or len(data) < 24:
        raise Failure(f"{path} is not a readable PNG image (no PNG header)")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if (width, height) != (28, 28):
        raise Failure(f"{path} is {width}x{height} pixels; resize it to 28x28")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            if im.size != (28, 28):
                raise ValueError(f"decoded size {im.size}")
            im.load()
            img = _grey(im)
    except Exception as exc:
        raise Failure(f"{path} is not a readable PNG image ({type(exc).__name__})") from None
    if img.mean() > 127:  # dark ink on light paper: invert to MNIST's convention
        img = 255.0 - img
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _grey(im) -> np.ndarray:
    """Grey levels 0..255 (float64) of a decoded PNG: the luminance of its colours, alpha
    ignored; 16-bit greyscale scaled down."""
    if im.mode.startswith("I"):  # 16-bit greyscale ("I;16", "I;16B", "I")
        return np.asarray(im, dtype=np.float64) * (255.0 / 65535.0)
    rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    return rgb @ _LUMA


def main(argv=None) -> int:
    return run(_main, argv, PROG)


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    if args.test_index is not None and not 0 <= args.test_index <= 9999:
        raise UsageError(f"--test-index must be in 0..9999; got {args.test_index}")
    from .checkpoint import CheckpointError, load_checkpoint, sub_state

    try:
        # Only the network and the input scaler: predicting never reads the trainer's state.
        net, state = load_checkpoint(args.checkpoint, device=args.device,
                                     read_state=(SCALER_PREFIX,))
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

        try:
            data = load_mnist(args.data_dir, splits=("test",))
        except MnistDataError as exc:
            raise Failure(str(exc)) from exc
        image = data.X_test[args.test_index].reshape(28, 28)
        label = int(data.y_test[args.test_index])

    if state is not None and "scaler" in state["json"]:
        try:
            scaler = Scaler.from_state(sub_state(state, "scaler"))
            x = scaler.transform(image.reshape(1, 784), net.dtype)
            if x.shape != (1, 784):
                raise ValueError(f"it turns one image into shape {x.shape}")
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise Failure(f"{args.checkpoint} has a damaged input scaler "
                          f"({type(exc).__name__}: {exc}); re-save it") from None
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
