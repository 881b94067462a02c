"""Turn a picture of one handwritten digit into a 28x28 MNIST-style image (needs Pillow).

:func:`mnist_style` (and :func:`prepare`, which also says what it did) follows the recipe MNIST
itself was made with (LeCun et al.: size-normalised to fit a 20x20 box keeping the aspect ratio,
anti-aliased, then centred in 28x28 by centre of mass), after first finding the ink in a
picture of any size and either polarity:

1. **Grey.** Colour becomes luminance (ITU-R 601-2, as Pillow's ``"L"``); 16-bit grey is scaled
   to 0..255; transparent pixels take the colour opposite to the opaque ones, so black strokes
   on a transparent background read as ink on paper.
2. **Polarity.** The background level is the median of the border pixels. The ink is whichever
   extreme (darkest or lightest pixel) lies farther from it: dark ink on light paper is
   inverted, so the digit is light on dark, as in MNIST.
3. **Ink.** Each pixel's ink is its distance from the background, less a noise floor (three
   standard deviations of the border, estimated robustly, at most a quarter of the contrast).
   When the strongest ink is under :data:`MIN_CONTRAST` grey levels the image is blank
   (:class:`ImageError`).
4. **Crop.** The ink's bounding box counts only pixels holding at least :data:`INK_FRACTION` of
   the strongest ink, so faint noise and paper texture do not widen it; the crop keeps a margin
   of two output pixels around it, so the faint anti-aliased edges of the strokes are not cut.
5. **Scale.** The box is scaled (up or down) so that its longer side is 20 pixels, keeping the
   aspect ratio, with Pillow's Lanczos filter (anti-aliased when shrinking).
6. **Centre.** The result is pasted into a 28x28 black canvas with its centre of mass at pixel
   (row 14, column 14), as MNIST's are (their mean is (13.99, 14.01)), by a whole-pixel shift
   rounded from the exact one, so the centre of mass ends within half a pixel of it in each
   axis. Only if that shift would push ink out of the canvas (a digit whose mass sits near an
   edge of its box) is it reduced to keep all the ink in.
7. **Levels.** Ringing below zero is clipped and the image is stretched so that its strongest
   pixel is 255 (MNIST digits peak at 254 or 255), then rounded to uint8.

An MNIST digit goes through unchanged, up to that stretch (254 -> 255) and an occasional
one-pixel shift where its centre of mass sits exactly half-way.

Files (:func:`read_image`) are read with bounds: at most :data:`MAX_IMAGE_BYTES` bytes (via
:func:`xpnet.io.read_capped`), and the width and height from the header (Pillow's lazy
``Image.open``) are checked against :data:`MAX_IMAGE_PIXELS` before any pixel is decoded. The
formats read are the common raster formats Pillow decodes itself (:data:`FORMATS`: PNG, JPEG,
BMP, GIF, TIFF, WebP, PNM, TGA, ICO, QOI, PCX, SGI, and AVIF and JPEG 2000 where Pillow has
them); only the first frame of an animation or multi-page file is used, and a JPEG's EXIF
orientation is applied. In a folder (:func:`image_files`), the image files are the regular
files directly inside it whose extension is one of those formats' (:data:`IMAGE_EXTENSIONS`,
any case), sorted by name; hidden files (``.name``) and everything else are skipped.

Photos work best evenly lit and cropped loosely around the digit: the background level is one
number for the whole picture, so a shadow darker than a quarter of the ink's contrast counts
as ink.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .io import FileTooLargeError, SpecialFileError, read_capped

__all__ = [
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "INK_FRACTION",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MIN_CONTRAST",
    "ImageError",
    "Prepared",
    "image_files",
    "mnist_style",
    "prepare",
    "read_image",
]

MAX_IMAGE_BYTES = 50 << 20  # a phone photo takes a few MB
MAX_IMAGE_PIXELS = 40_000_000  # 40 megapixels: more than phone cameras give, 160 MB as RGBA
MIN_CONTRAST = 32  # grey levels between background and the strongest ink; less is blank
INK_FRACTION = 0.25  # of the strongest ink: the least a pixel needs to count for the crop
BOX = 20  # the digit is scaled to fit BOX x BOX ...
SIZE = 28  # ... and centred in SIZE x SIZE
CENTRE = 14.0  # where the centre of mass goes (row and column), as in MNIST
MARGIN = 2  # output pixels kept around the ink's bounding box (anti-aliased stroke edges)
_ORIENTATION = 0x0112  # the EXIF tag

_WANTED = ("PNG", "JPEG", "BMP", "DIB", "GIF", "TIFF", "WEBP", "PPM", "TGA", "ICO", "QOI", "PCX",
           "SGI", "AVIF", "JPEG2000")
Image.init()
#: The Pillow formats read: common raster formats Pillow decodes itself (never EPS, which would
#: run Ghostscript, nor the stub formats that need outside handlers).
FORMATS: tuple[str, ...] = tuple(f for f in _WANTED if f in Image.OPEN)
#: Lower-case file extensions (with the dot) of :data:`FORMATS`: what a folder is searched for.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    ext for ext, fmt in Image.registered_extensions().items() if fmt in FORMATS)


class ImageError(ValueError):
    """An image that cannot be used, described in one sentence that names it and the fix."""


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare` made of a picture.

    ``image``: (28, 28) uint8, light digit on black; ``size``: the picture's (width, height);
    ``inverted``: whether it was dark ink on light paper; ``box``: the ink's bounding box in
    the picture as (left, top, right, bottom), right and bottom exclusive."""

    image: np.ndarray
    size: tuple[int, int]
    inverted: bool
    box: tuple[int, int, int, int]

    def describe(self) -> str:
        """E.g. ``"200x150 pixels, dark digit on a light background (inverted)"``."""
        w, h = self.size
        kind = ("dark digit on a light background (inverted)" if self.inverted
                else "light digit on a dark background")
        return f"{w}x{h} pixels, {kind}"


# ---------------------------------------------------------------------------------- files
def image_files(folder) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name (plain code-point order): the
    regular files (symlinks followed) whose extension, in any case, is in
    :data:`IMAGE_EXTENSIONS`, hidden ones (``.name``) left out. Sub-folders are not searched."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            try:
                if entry.is_file():  # follows symlinks; a FIFO or folder named x.png is skipped
                    found.append(entry.name)
            except OSError:
                continue
    return [Path(folder) / name for name in sorted(found)]


def read_image(path, *, max_bytes: int = MAX_IMAGE_BYTES,
               max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """The picture in file ``path``, decoded (first frame, EXIF orientation applied), as a
    Pillow image of its own mode and size.

    Bounded: at most ``max_bytes`` bytes are read, and a picture whose header declares more
    than ``max_pixels`` pixels (width x height) is refused before any pixel is decoded.
    Pillow's decompression-bomb check is answered in the same way, never with its warning or
    traceback. Every problem (missing file, folder, FIFO, too large, not an image, truncated)
    raises :class:`ImageError` with one sentence naming ``path``; ``OSError`` never escapes."""
    try:
        data = read_capped(path, max_bytes)
    except FileNotFoundError:
        raise ImageError(f"{path} does not exist; check the path") from None
    except FileTooLargeError as exc:
        raise ImageError(f"{path} holds {exc.size_text} bytes, more than the {max_bytes} an "
                         f"image may take; save it smaller (e.g. as a JPEG) or crop it to the "
                         f"digit") from None
    except SpecialFileError as exc:
        raise ImageError(f"{path} is {exc.kind}, not a regular file; give an image file"
                         ) from None
    except OSError as exc:
        raise ImageError(f"cannot read {path} ({exc.strerror or exc}); check its permissions"
                         ) from None
    with warnings.catch_warnings():
        # Our own, lower, cap is checked below; Pillow's warning would be a second stderr line.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=FORMATS)  # the header only
        except Image.DecompressionBombError as exc:
            raise ImageError(_too_big(path, exc, max_pixels)) from None
        except Exception as exc:
            raise ImageError(f"{path} is not a readable image ({_why(exc)}); give a PNG, JPEG "
                             f"or another common image format") from None
        try:
            return _decode(im, path, max_pixels)
        except BaseException:
            im.close()
            raise


def _too_big(path, exc: Exception, max_pixels: int) -> str:
    """Our sentence for Pillow's DecompressionBombError (it exceeds twice Pillow's own cap)."""
    m = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(m.group(1)) / 1e6:.1f} megapixels" if m else "larger than Pillow will open"
    return (f"{path} is {size}, more than the {max_pixels / 1e6:g} megapixels read; scale it "
            f"down or crop it to the digit")


def _decode(im: Image.Image, path, max_pixels: int) -> Image.Image:
    """The opened (not yet decoded) ``im``, checked against ``max_pixels``, decoded and turned
    upright by its EXIF orientation (a copy only when it has one)."""
    width, height = im.size
    if width * height > max_pixels:
        raise ImageError(
            f"{path} is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels), more "
            f"than the {max_pixels / 1e6:g} megapixels read; scale it down or crop it to the "
            f"digit")
    try:
        im.load()
        if _orientation(im) != 1:
            upright = ImageOps.exif_transpose(im)
            im.close()
            im = upright
    except Image.DecompressionBombError as exc:
        raise ImageError(_too_big(path, exc, max_pixels)) from None
    except Exception as exc:
        raise ImageError(f"{path} is not a readable image ({_why(exc)}); it may be truncated or "
                         f"damaged") from None
    if im.width * im.height > max_pixels or min(im.size) < 1:
        raise ImageError(f"{path} decoded to {im.width}x{im.height} pixels, not the "
                         f"{width}x{height} its header declares; the file is damaged or crafted")
    return im


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1: upright), 1 where the EXIF data cannot be read."""
    try:
        return int(im.getexif().get(_ORIENTATION, 1))
    except Exception:
        return 1


def _why(exc: Exception) -> str:
    """Pillow's reason, short: ``"UnidentifiedImageError"``, ``"OSError: image file is
    truncated"``..."""
    if isinstance(exc, Image.UnidentifiedImageError):  # its text names our in-memory buffer
        return "not in a format Pillow reads"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------------------------- pixels
def grey_levels(image, name: str = "the image") -> np.ndarray:
    """``image`` as a (H, W) array of grey levels 0..255: uint8 for a Pillow image (step 1 of
    the module docstring), the array itself (as float32) for a (H, W) array, luminance for a
    (H, W, 3) or (H, W, 4) array (alpha as for a Pillow image). Arrays hold values 0..255."""
    if isinstance(image, Image.Image):
        return _grey_of_pil(image, name)
    a = np.asarray(image)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ImageError(f"an image array must hold numbers; got dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] in (3, 4):
        mode = "RGB" if a.shape[2] == 3 else "RGBA"
        rgb = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return _grey_of_pil(Image.fromarray(rgb, mode), name)
    if a.ndim != 2:
        raise ImageError(f"an image array must have shape (H, W), (H, W, 3) or (H, W, 4); "
                         f"got {a.shape}")
    if a.size == 0:
        raise ImageError(f"{name} is empty (shape {a.shape})")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ImageError(f"{name} holds NaN or infinite values")
    return a


def _grey_of_pil(im: Image.Image, name: str) -> np.ndarray:
    if im.width < 1 or im.height < 1:
        raise ImageError(f"{name} is empty ({im.width}x{im.height} pixels)")
    if im.mode.startswith("I"):  # 16-bit ("I;16", "I;16B", ...) or 32-bit integer grey
        a = np.asarray(im, dtype=np.float32) * np.float32(255.0 / 65535.0)
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if im.mode == "F":  # floating-point grey: 0..1 or 0..255
        a = np.asarray(im, dtype=np.float32)
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        if a.size and a.max() <= 1.0:
            a = a * np.float32(255.0)
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        if alpha.min() < 255:
            luma = np.asarray(rgba.convert("L"))
            weight = alpha.astype(np.float64)
            content = float((luma * weight).sum() / weight.sum()) if weight.sum() else 255.0
            backdrop = (255, 255, 255, 255) if content < 127.5 else (0, 0, 0, 255)
            rgba = Image.alpha_composite(Image.new("RGBA", rgba.size, backdrop), rgba)
        return np.asarray(rgba.convert("L"))
    if im.mode not in ("L", "1", "P", "RGB"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...
    return np.asarray(im.convert("L"))


def _border(grey: np.ndarray) -> np.ndarray:
    if min(grey.shape) <= 2:
        return grey.ravel()
    return np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])


def prepare(image, *, name: str = "the image") -> Prepared:
    """Make ``image`` (a Pillow image, or an array as :func:`grey_levels` takes) an MNIST-style
    digit, as the module docstring describes; the result also says what was done.

    Raises :class:`ImageError` for a blank image (no ink: see :data:`MIN_CONTRAST`) and for
    arrays of the wrong shape or type; ``name`` (e.g. the file's path) is what its message
    calls the image."""
    grey = grey_levels(image, name)
    height, width = grey.shape

    # 2. polarity, from the background (border median) and the two extremes
    border = _border(grey).astype(np.float32)
    background = float(np.median(border))
    lo, hi = float(grey.min()), float(grey.max())
    inverted = background - lo > hi - background
    peak = background - lo if inverted else hi - background
    if peak < MIN_CONTRAST:
        raise ImageError(f"{name} is blank: no pixel differs from the background by "
                         f"{MIN_CONTRAST} grey levels or more (the most is {peak:.0f}); give a "
                         f"picture of a digit")

    # 3. the noise floor, from the border's median absolute deviation
    sigma = 1.4826 * float(np.median(np.abs(border - background)))
    floor = min(3.0 * sigma, 0.25 * peak)

    # 4. the bounding box of the pixels holding at least INK_FRACTION of the strongest ink
    level = floor + INK_FRACTION * (peak - floor)
    mask = grey <= background - level if inverted else grey >= background + level
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    del mask
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    box_h, box_w = bottom - top, right - left

    # 5. scale so the longer side is BOX, keeping a MARGIN of output pixels around the box
    scale = BOX / max(box_h, box_w)
    out_h = max(1, round(box_h * scale)) + 2 * MARGIN
    out_w = max(1, round(box_w * scale)) + 2 * MARGIN
    src_top = (top + bottom) / 2 - out_h / (2 * scale)
    src_left = (left + right) / 2 - out_w / (2 * scale)
    src_bottom, src_right = src_top + out_h / scale, src_left + out_w / scale
    r0, c0 = math.floor(src_top), math.floor(src_left)
    r1, c1 = math.ceil(src_bottom), math.ceil(src_right)
    ink = np.zeros((r1 - r0, c1 - c0), dtype=np.float32)  # zero (background) beyond the picture
    pr0, pc0, pr1, pc1 = max(r0, 0), max(c0, 0), min(r1, height), min(c1, width)
    part = grey[pr0:pr1, pc0:pc1].astype(np.float32)
    part = (background - part) if inverted else (part - background)
    ink[pr0 - r0:pr1 - r0, pc0 - c0:pc1 - c0] = np.maximum(part - np.float32(floor), 0)
    # Shrinking averages each output pixel's area (anti-aliasing, as MNIST's normalisation
    # did, and no ink spills out of the box); enlarging a small digit interpolates smoothly.
    resample = Image.BOX if scale <= 1 else Image.BICUBIC
    digit = Image.fromarray(ink, "F").resize(
        (out_w, out_h), resample,
        box=(src_left - c0, src_top - r0, src_right - c0, src_bottom - r0))
    digit = np.maximum(np.asarray(digit, dtype=np.float64), 0.0)  # bicubic rings below zero
    mass = digit.sum()
    if not mass > 0:  # cannot happen with ink in the box; kept as a clear error all the same
        raise ImageError(f"{name} is blank: no ink is left after scaling it to 20x20; give a "
                         f"picture of a digit")

    # 6. centre of mass to (CENTRE, CENTRE) by a whole-pixel shift, keeping the ink in
    ys, xs = np.arange(out_h, dtype=np.float64), np.arange(out_w, dtype=np.float64)
    com_y, com_x = (digit.sum(axis=1) @ ys) / mass, (digit.sum(axis=0) @ xs) / mass
    oy = _clamp(math.floor(CENTRE - com_y + 0.5), -MARGIN, SIZE - out_h + MARGIN)
    ox = _clamp(math.floor(CENTRE - com_x + 0.5), -MARGIN, SIZE - out_w + MARGIN)
    canvas = np.zeros((SIZE, SIZE), dtype=np.float64)
    y0, x0 = max(oy, 0), max(ox, 0)
    y1, x1 = min(oy + out_h, SIZE), min(ox + out_w, SIZE)
    canvas[y0:y1, x0:x1] = digit[y0 - oy:y1 - oy, x0 - ox:x1 - ox]

    # 7. levels
    canvas *= 255.0 / canvas.max()
    out = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return Prepared(out, (width, height), bool(inverted), (left, top, right, bottom))


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def mnist_style(image) -> np.ndarray:
    """``image`` (a Pillow image of any mode and size, or a (H, W) grey / (H, W, 3) RGB /
    (H, W, 4) RGBA array of values 0..255) as a (28, 28) uint8 MNIST-style digit: light on
    black, the ink scaled to fit 20x20 keeping its aspect ratio and centred by centre of mass
    at (14, 14). The steps are in the module docstring. Raises :class:`ImageError` for a blank
    image."""
    return prepare(image).image
