"""``xpnet.imaging``: pictures of any size and polarity made MNIST-style, and bounded reading.

In-process and fast: images are made with Pillow in ``tmp_path``, from real MNIST test digits
where the data is there (``data_dir`` skips, saying why, when it is not) and from synthetic
strokes otherwise. The command line is tested in tests/test_predict_cli.py.
"""

from __future__ import annotations

import struct
import warnings
import zlib

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image", reason="xpnet.imaging needs Pillow")
from PIL import ImageDraw, ImageFile  # noqa: E402

import xpnet  # noqa: E402
from xpnet import imaging  # noqa: E402
from xpnet.imaging import ImageError, image_files, mnist_style, prepare, read_image  # noqa: E402

# A whole-pixel shift rounded from the exact one leaves the centre of mass at most 0.5 px from
# (14, 14) in each axis; rounding the levels to uint8 afterwards moves it by a few thousandths.
COM_TOLERANCE = 0.5 + 0.01
INK = 64  # a quarter of full scale: what counts as ink when measuring the digit's box


@pytest.fixture(scope="module")
def mnist(data_dir):
    return xpnet.load_mnist(data_dir, download=False, splits=("test",))


def centre_of_mass(image):
    """(row, column) of a 2-D array's centre of mass, pixel centres at integer coordinates."""
    a = image.astype(np.float64)
    rows, cols = np.arange(a.shape[0]), np.arange(a.shape[1])
    return (a.sum(axis=1) @ rows) / a.sum(), (a.sum(axis=0) @ cols) / a.sum()


def ink_box(image, level=INK):
    """(height, width) of the bounding box of the pixels >= level."""
    rows = np.flatnonzero((image >= level).any(axis=1))
    cols = np.flatnonzero((image >= level).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def best_correlation(a, b):
    """The largest correlation of ``a`` with ``b`` shifted by at most one pixel each way: two
    valid centrings of one digit can differ by a pixel where its centre of mass lies half-way
    between pixels."""
    return max(np.corrcoef(np.roll(a, (dy, dx), (0, 1)).ravel().astype(float),
                           b.ravel().astype(float))[0, 1]
               for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def enlarged_on_paper(digit, size=(200, 150), digit_px=120, at=(50, 10)):
    """An MNIST digit (28, 28) drawn as dark ink on white paper: scaled up to ``digit_px``
    square (bicubic) and pasted at ``at`` into a white canvas of ``size`` (width, height)."""
    big = Image.fromarray(255 - digit).resize((digit_px, digit_px), Image.BICUBIC)
    paper = Image.new("L", size, 255)
    paper.paste(big, at)
    return paper


def strokes(size=(300, 400), lines=(((60, 50), (240, 50)), ((240, 50), (110, 350))), width=24,
            ink=0, paper=255):
    """A synthetic "7": thick lines of colour ``ink`` on ``paper``, an "L" image of ``size``."""
    im = Image.new("L", size, paper)
    draw = ImageDraw.Draw(im)
    for a, b in lines:
        draw.line([a, b], fill=ink, width=width)
    return im


def png_bytes(width, height):
    """A valid 1-bit greyscale PNG of width x height black pixels: a few KB of compressed zeros,
    made without ever holding the image in memory as Pillow would."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


# ------------------------------------------------------------------------------ MNIST digits
def test_mnist_digits_go_through_unchanged(mnist):
    """An MNIST digit is already MNIST-style: out comes the same image, up to the stretch that
    makes the strongest pixel 255 (MNIST's peak at 254 or 255)."""
    for x in mnist.X_test[:300].reshape(-1, 28, 28):
        want = np.rint(x * (255.0 / x.max()))
        assert np.abs(mnist_style(x).astype(int) - want).max() <= 1


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP"])
def test_enlarged_dark_on_light_digit_recovers_the_original(fmt, mnist, tmp_path):
    """Real test digits drawn 120 px tall in dark ink on a 200x150 white page, saved and read
    back: light on dark again, 28x28, close to the original MNIST digit, centred."""
    for index in range(10):
        digit = mnist.X_test[index].reshape(28, 28)
        path = tmp_path / f"digit{index}.{fmt.lower()}"
        enlarged_on_paper(digit).convert("RGB").save(path, fmt)
        prepared = prepare(read_image(path))
        assert prepared.inverted and prepared.size == (200, 150)
        out = prepared.image
        assert out.shape == (28, 28) and out.dtype == np.uint8
        frame = np.concatenate([out[0], out[-1], out[:, 0], out[:, -1]])
        assert frame.max() < INK  # the ink keeps clear of the edges, as in MNIST
        assert best_correlation(out, digit) > 0.9, index
        np.testing.assert_allclose(centre_of_mass(out), (14, 14), atol=COM_TOLERANCE)
        assert max(ink_box(out)) <= 20


def test_light_on_dark_digit_is_not_inverted(mnist):
    digit = mnist.X_test[1].reshape(28, 28)
    paper = enlarged_on_paper(digit)
    dark = Image.fromarray(255 - np.asarray(paper))
    a, b = prepare(paper), prepare(dark)
    assert a.inverted and not b.inverted
    np.testing.assert_array_equal(a.image, b.image)


# ------------------------------------------------------------------------------ geometry
@pytest.mark.parametrize("size, lines, width", [
    ((300, 400), (((60, 50), (240, 50)), ((240, 50), (110, 350))), 24),  # a "7", tall
    ((1000, 300), (((100, 150), (900, 150)), ((500, 60), (500, 240))), 30),  # a wide cross
    ((64, 64), (((5, 5), (20, 5)), ((20, 5), (8, 40))), 3),  # small, in a corner
    ((500, 500), (((250, 100), (250, 400)),), 40),  # a "1": one upright bar
    ((40, 30), (((10, 8), (30, 8)), ((30, 8), (14, 24))), 2),  # smaller than 20x20: enlarged
])
def test_ink_fits_20x20_and_its_centre_of_mass_is_at_14_14(size, lines, width):
    out = mnist_style(strokes(size, lines, width))
    height, breadth = ink_box(out)
    assert max(height, breadth) <= 20  # it fits ...
    assert max(height, breadth) >= 18  # ... filling the box along its longer side
    np.testing.assert_allclose(centre_of_mass(out), (14, 14), atol=COM_TOLERANCE)
    assert out.max() == 255


def test_aspect_ratio_is_kept():
    """A 3:1 bar becomes about 20x7: the ratio of the ink box's sides is kept."""
    bar = Image.new("L", (600, 200), 0)
    ImageDraw.Draw(bar).rectangle([150, 50, 449, 149], fill=255)  # 300 x 100 px of ink
    out = mnist_style(bar)
    height, breadth = ink_box(out, level=128)
    assert breadth == 20 and abs(height - 20 / 3) <= 1


def test_ink_is_never_pushed_off_the_canvas():
    """A digit whose mass sits at one end of its box (a heavy blob on a thin stem) cannot have
    its centre of mass at (14, 14) without cutting ink: the shift stops at the canvas edge."""
    im = Image.new("L", (200, 600), 255)
    draw = ImageDraw.Draw(im)
    draw.ellipse([20, 20, 180, 180], fill=0)
    draw.line([(100, 180), (100, 580)], fill=0, width=16)  # its mass is at 5.3 of 20 rows
    out = mnist_style(im)
    rows = np.flatnonzero((out >= INK).any(axis=1))
    assert rows[-1] == 27 and rows[-1] - rows[0] + 1 == 20  # the whole stem is still there
    assert centre_of_mass(out)[0] < 13.5  # as low as the ink lets it go: short of row 14


def test_faint_noise_does_not_widen_the_crop():
    """Paper texture and a faint smudge far from the digit leave the crop as on clean paper,
    and the result close to it."""
    clean = strokes()
    rng = np.random.default_rng(0)
    noisy = np.asarray(clean, dtype=np.float64) - rng.normal(0, 6, (400, 300))
    noisy[380:395, 10:60] -= 40  # a faint smudge in a corner
    noisy = Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))
    a, b = prepare(clean), prepare(noisy)
    assert a.box == b.box  # the same crop, to the pixel
    assert ink_box(a.image) == ink_box(b.image)
    assert best_correlation(a.image, b.image) > 0.97  # (this "7" is centred half-way: 14.49)


# ------------------------------------------------------------------------------ blank
@pytest.mark.parametrize("picture", [
    Image.new("L", (50, 40), 255), Image.new("L", (50, 40), 0), Image.new("RGB", (9, 9), "grey"),
    Image.fromarray(np.random.default_rng(1).integers(120, 140, (60, 60)).astype(np.uint8)),
], ids=["white", "black", "grey", "faint-noise"])
def test_a_blank_image_is_refused_in_one_sentence(picture):
    with pytest.raises(ImageError) as info:
        prepare(picture, name="page.png")
    message = str(info.value)
    assert message.startswith("page.png is blank: ") and "\n" not in message
    assert f"{imaging.MIN_CONTRAST} grey levels" in message


# ------------------------------------------------------------------------------ modes, files
def test_modes_and_formats_read_alike(tmp_path):
    """The same digit as 8-bit grey, 16-bit grey, palette, RGB, 1-bit, grey+alpha and black
    strokes on a transparent background (as drawing apps export) gives one result."""
    ink = np.asarray(strokes((120, 160), (((20, 20), (100, 20)), ((100, 20), (40, 140))), 12))
    files = {
        "l.png": Image.fromarray(ink),
        "i16.png": Image.fromarray(ink.astype(np.uint16) * 257),
        "p.gif": Image.fromarray(ink).convert("P"),
        "rgb.tif": Image.fromarray(ink).convert("RGB"),
        "bw.bmp": Image.fromarray(ink).convert("1"),
        "la.png": Image.fromarray(ink).convert("LA"),
        "webp.webp": Image.fromarray(ink).convert("RGB"),
    }
    clear = np.zeros((160, 120, 4), dtype=np.uint8)
    clear[..., 3] = 255 - ink  # colour black everywhere; the ink is where it is opaque
    files["transparent.png"] = Image.fromarray(clear, "RGBA")
    want = mnist_style(Image.fromarray(ink))
    for name, im in files.items():
        im.save(tmp_path / name, lossless=True) if name.endswith(".webp") \
            else im.save(tmp_path / name)
        got = mnist_style(read_image(tmp_path / name))
        assert np.abs(got.astype(int) - want).max() <= 1, name


def test_exif_orientation_is_applied(tmp_path):
    """A photo stored upside down with EXIF orientation 3 (rotate 180) is read upright."""
    upright = strokes()
    exif = Image.Exif()
    exif[0x0112] = 3
    upright.rotate(180).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    got = mnist_style(read_image(tmp_path / "photo.jpg"))
    assert np.corrcoef(got.ravel(), mnist_style(upright).ravel())[0, 1] > 0.95


def test_arrays_of_each_shape(tmp_path):
    grey = np.asarray(strokes())
    want = mnist_style(grey)
    np.testing.assert_array_equal(mnist_style(np.stack([grey] * 3, axis=-1)), want)
    np.testing.assert_array_equal(mnist_style(grey.astype(np.float64)), want)
    for bad in (np.zeros((2, 3, 4, 5)), np.zeros((0, 5)), np.array([["a", "b"]])):
        with pytest.raises(ImageError):
            mnist_style(bad)


# ------------------------------------------------------------------------------ bounds
@pytest.fixture
def spy_decode(monkeypatch):
    """Records every pixel decode Pillow starts (ImageFile.load)."""
    calls = []
    real = ImageFile.ImageFile.load

    def load(self):
        calls.append(self.size)
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return calls


def test_too_many_pixels_is_refused_before_decoding(spy_decode, tmp_path):
    """A valid 10000x10000 PNG (100 megapixels in 13 KB) is refused from its header, with no
    pixel decoded; one of 20000x20000, which Pillow itself refuses as a decompression bomb,
    gets the same kind of sentence and no Pillow warning."""
    big, bomb = tmp_path / "big.png", tmp_path / "bomb.png"
    big.write_bytes(png_bytes(10000, 10000))
    bomb.write_bytes(png_bytes(20000, 20000))
    assert big.stat().st_size < 100_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DecompressionBombWarning would fail the test
        with pytest.raises(ImageError) as info:
            read_image(big)
        assert str(info.value) == (f"{big} is 10000x10000 pixels (100.0 megapixels), more than "
                                   f"the 40 megapixels read; scale it down or crop it to the "
                                   f"digit")
        with pytest.raises(ImageError) as info:
            read_image(bomb)
        assert str(info.value) == (f"{bomb} is 400.0 megapixels, more than the 40 megapixels "
                                   f"read; scale it down or crop it to the digit")
    assert spy_decode == []
    # and a smaller cap is honoured the same way
    small = tmp_path / "small.png"
    strokes().save(small)
    with pytest.raises(ImageError, match="300x400 pixels"):
        read_image(small, max_pixels=100_000)
    assert spy_decode == []
    assert read_image(small).size == (300, 400)
    assert spy_decode and set(spy_decode) == {(300, 400)}  # the spy sees decodes


def test_too_many_bytes_is_refused_unread(tmp_path):
    assert imaging.MAX_IMAGE_BYTES == 50 << 20
    path = tmp_path / "padded.png"
    strokes().save(path)
    path.write_bytes(path.read_bytes() + bytes(5000))
    with pytest.raises(ImageError, match=r"padded.png holds \d+ bytes, more than the 4096 "):
        read_image(path, max_bytes=4096)


@pytest.mark.parametrize("content", [b"", b"hello, not an image\n", b"\x89PNG\r\n\x1a\ncut",
                                     "truncated"])
def test_unreadable_files_are_one_sentence(content, tmp_path):
    path = tmp_path / "digit.png"
    if content == "truncated":
        strokes().save(path)
        content = path.read_bytes()[:200]
    path.write_bytes(content)
    with pytest.raises(ImageError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path} is not a readable image (") and "\n" not in message
    assert "BytesIO" not in message


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="absent.png does not exist; check the path"):
        read_image(tmp_path / "absent.png")
    with pytest.raises(ImageError, match="is a directory, not a regular file"):
        read_image(tmp_path)


def test_eps_is_never_handed_to_ghostscript(tmp_path):
    path = tmp_path / "digit.eps"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n")
    assert "EPS" not in imaging.FORMATS and ".eps" not in imaging.IMAGE_EXTENSIONS
    with pytest.raises(ImageError, match="not a readable image"):
        read_image(path)


# ------------------------------------------------------------------------------ folders
def test_a_folder_lists_its_image_files_by_name(tmp_path):
    for name in ("b.png", "a.JPG", "c.jpeg", "d.bmp", "notes.txt", "model.npz", ".hidden.png",
                 "noext"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()  # a folder with an image's name
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.png").write_bytes(b"x")
    assert [p.name for p in image_files(tmp_path)] == ["a.JPG", "b.png", "c.jpeg", "d.bmp"]
    assert image_files(tmp_path / "sub") == [tmp_path / "sub" / "e.png"]
