"""Read image files for scoring: decode, normalise to RGB uint8, clear errors."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import cv2
import numpy as np

from relbench.scene import BACKGROUND_RGB, RelationSpec
from relbench.scoring.detect import Detector, estimate_background
from relbench.scoring.judge import ScoreResult, score_image


class ImageReadError(ValueError):
    """A file that cannot be scored (missing, empty, corrupt, grayscale, too large)."""


MAX_PIXELS = 40_000_000
"""Default cap on width × height of an image to score (a 6324 px square), checked from the file
header before anything is decoded: a few-MB PNG can declare 20000 × 20000 pixels and take GBs
to decode. Pass `max_pixels` (CLI `relbench score --max-pixels`) to change it; 0 means no cap."""


def image_size(data_or_path: bytes | str | Path, name: str) -> tuple[int, int]:
    """(width, height) read from an image's header only (no pixel is decoded). For an image so
    large that PIL refuses even to open it, (pixels, 1) from PIL's message."""
    import io
    import warnings

    if isinstance(data_or_path, bytes):
        fast = _header_size(data_or_path)
        if fast is not None:
            return fast

    from PIL import Image, UnidentifiedImageError

    src = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's own bomb warning: the cap below decides
            with Image.open(src) as im:
                return im.size
    except Image.DecompressionBombError as e:  # PIL's own cap is far above any sane one
        import re

        found = re.search(r"\((\d+) pixels\)", str(e))
        return (int(found.group(1)) if found else 1 << 31, 1)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageReadError(f"{name}: corrupt or unsupported image") from None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or baseline/progressive JPEG from its first bytes, without PIL
    (whose plugin probing costs more than decoding a small PNG); None when the header is not
    one of these or not plainly readable (PIL then decides)."""
    if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    i = _jpeg_frame(data)
    if i is None:
        return None
    h, w = struct.unpack(">HH", data[i + 5 : i + 9])
    return (w, h)


def _jpeg_frame(data: bytes) -> int | None:
    """The offset of a JPEG's frame header (its SOF marker) in `data`, found with its length,
    sample precision, height and width inside `data`; None when `data` is not a JPEG or its
    header is not plainly readable."""
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, min(len(data), 1 << 20)
    while i + 9 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            return i
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def check_pixels(size: tuple[int, int], name: str, max_pixels: int | None) -> None:
    """Refuse an image whose header declares more than `max_pixels` pixels."""
    cap = MAX_PIXELS if max_pixels is None else max_pixels
    w, h = size
    if cap and w * h > cap:
        dims = f" ({w}x{h})" if h > 1 else ""
        raise ImageReadError(
            f"{name}: image has {w * h} pixels{dims}, over the limit of {cap} "
            "(relbench score --max-pixels changes it)"
        )


def decode_image(
    data: bytes, name: str = "<bytes>", background: tuple[int, int, int] = BACKGROUND_RGB,
    *, max_pixels: int | None = None,
) -> np.ndarray:
    """Encoded image bytes -> (H, W, 3) uint8 RGB.

    16-bit images are scaled to 8 bits; palette images are expanded by the decoder; RGBA is
    composited over the background estimated from the border when the border is opaque, else
    over `background` (the detector's expected background); single-channel images are
    refused (colour is needed).
    """
    if not data:
        raise ImageReadError(f"{name}: empty file")
    check_pixels(image_size(data, name), name, max_pixels)
    return _decode_checked(data, name, background)


def read_image(
    path: str | Path, background: tuple[int, int, int] = BACKGROUND_RGB,
    *, max_pixels: int | None = None, name: str | None = None,
) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB (see `decode_image` for the conversions).

    The header is read first and an image over `max_pixels` (default MAX_PIXELS) is refused
    before decoding. `name` is how errors call the file (default the path)."""
    path = os.fspath(path)
    name = path if name is None else name
    try:
        # Non-blocking open: a FIFO planted in a folder must not hang the run. Plain file
        # descriptor reads: a buffered file object costs more than reading a small PNG.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ImageReadError(f"{name}: no such file")
            head = os.read(fd, _HEADER_BYTES)
            if not head:
                raise ImageReadError(f"{name}: empty file")
            size = _header_size(head)  # the header decides before the rest is read
            check_pixels(size if size is not None else image_size(path, name), name,
                         max_pixels)
            # A small file is whole once its size is read (no read to find its end).
            data = head if len(head) == info.st_size < _HEADER_BYTES else head + _read_rest(fd)
        finally:
            os.close(fd)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ImageReadError(f"{name}: no such file") from None
    except PermissionError:
        raise ImageReadError(f"{name}: cannot read (permission denied)") from None
    return _decode_checked(data, name, background)


def _decode_checked(data: bytes, name: str, background: tuple[int, int, int]) -> np.ndarray:
    """Bytes whose pixel count was checked -> RGB uint8 (`decode_image`'s conversions)."""
    _check_complete(data[:2], data[-64:], name)
    if _plain_rgb(data):  # the decoder writes RGB itself: no conversion to make
        return _decode(lambda: cv2.imdecode(np.frombuffer(data, np.uint8), _RGB_FLAGS), name)
    img = _decode(lambda: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), name)
    return _normalise(img, name, background)


_RGB_FLAGS = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
"""8-bit RGB out of the decoder, the stored pixels as they are (no EXIF rotation, as
IMREAD_UNCHANGED leaves them)."""


def _plain_rgb(data: bytes) -> bool:
    """Whether the image is 8-bit three-channel colour with no transparency, which the decoder
    gives unchanged as RGB (`_normalise` would only reorder its channels): a PNG of colour type
    2 and bit depth 8 without a tRNS chunk, or an 8-bit JPEG of three components. Anything
    else, or a header not plainly readable, takes the general path."""
    if data[:8] == _PNG_SIGNATURE:
        if data[12:16] != b"IHDR" or data[24:26] != b"\x08\x02":  # bit depth 8, truecolour
            return False
        i, n = 33, len(data)
        while i + 8 <= n:  # the chunks before the image data: no transparency among them
            kind = data[i + 4 : i + 8]
            if kind == b"IDAT":
                return True
            if kind == b"tRNS":
                return False
            i += 12 + struct.unpack(">I", data[i : i + 4])[0]
        return False
    i = _jpeg_frame(data)  # 8-bit samples, three components
    return i is not None and len(data) > i + 9 and data[i + 4] == 8 and data[i + 9] == 3


_HEADER_BYTES = 1 << 16
"""Bytes read before the pixel cap is checked: a PNG header and most JPEG headers."""


def _read_rest(fd: int) -> bytes:
    """Everything left to read from a file descriptor."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _check_complete(head: bytes, tail: bytes, name: str) -> None:
    """Refuse a JPEG without its end-of-image marker: OpenCV decodes a truncated JPEG with a
    warning and fills the missing part grey, which would score as a model failure."""
    if head == b"\xff\xd8" and b"\xff\xd9" not in tail:
        raise ImageReadError(f"{name}: truncated JPEG (no end-of-image marker)")


def _decode(decode, name: str) -> np.ndarray:
    """Run an OpenCV decode; a None result or a cv2.error (e.g. its own pixel limit) is corrupt."""
    try:
        img = decode()
    except cv2.error as e:
        raise ImageReadError(f"{name}: cannot decode ({str(e).strip().splitlines()[-1]})") from None
    if img is None:
        raise ImageReadError(f"{name}: corrupt or unsupported image")
    return img


def score_file(path: str | Path, spec: RelationSpec, detector: Detector) -> ScoreResult:
    """`score_image` on a decoded file."""
    return score_image(read_image(path, detector.config.background), spec, detector)


def _normalise(img: np.ndarray, name: str, background: tuple[int, int, int]) -> np.ndarray:
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        raise ImageReadError(f"{name}: grayscale image; colour is needed")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageReadError(f"{name}: unsupported pixel type {img.dtype}")
    if img.shape[2] == 4:
        rgb = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        alpha = img[..., 3:4].astype(np.float32) / 255.0
        if alpha.min() < 1.0:
            opaque = alpha[..., 0] > 0.5
            border_ok = np.concatenate([opaque[0], opaque[-1], opaque[:, 0], opaque[:, -1]])
            fallback = np.asarray(background, dtype=np.float64)
            bg = estimate_background(rgb) if border_ok.all() else fallback
            rgb = (rgb * alpha + bg[None, None] * (1 - alpha) + 0.5).astype(np.uint8)
        return rgb
    if img.shape[2] != 3:
        raise ImageReadError(f"{name}: unsupported channel count {img.shape[2]}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
