"""Draw the style gallery: a contact sheet of style-suite samples with the scorer's view.

    python scripts/gallery.py [--out docs/img/style_gallery.png] [--tile 256] [--cols 6]

One row per style factor group (relbench.styles) plus combinations, each tile a seeded
render at its own resolution shown at `--tile` px. On each tile: every detection's centre and
label (colour shape) as the default classical scorer found it, the true relation at the top
left, and a frame green when the scorer's verdict is correct, red when not. Rows and seeds are
fixed, so the sheet is reproducible; rerun after a scorer change to refresh it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from relbench.scene import COLOR_RGB
from relbench.scoring import detect, judge, load_detector
from relbench.styles import StyledImage, sample_styled

ROOT = Path(__file__).resolve().parents[1]

ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("flat (no factor)", ()),
    ("shading", ("shading",)),
    ("shadow + outline", ("shadow", "outline")),
    ("background", ("background",)),
    ("geometry + size", ("geometry", "size")),
    ("colour", ("colour",)),
    ("resolution + jpeg", ("resolution", "jpeg")),
    ("shading, shadow, background, colour", ("shading", "shadow", "background", "colour")),
    ("all factors", ("shading", "shadow", "background", "outline", "geometry", "colour",
                     "size", "resolution", "jpeg")),
)
"""(row title, factors) of the sheet, top to bottom."""

FONT = cv2.FONT_HERSHEY_SIMPLEX
HEADER = 26
GREEN, RED = (40, 170, 60), (215, 40, 40)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    """White text on a translucent dark box, legible on any background."""
    (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
    x, y = org
    r0, r1 = max(y - h - 3, 0), min(y + base + 1, img.shape[0])
    c0, c1 = max(x - 3, 0), min(x + w + 3, img.shape[1])
    img[r0:r1, c0:c1] = (img[r0:r1, c0:c1] * 0.4).astype(np.uint8)
    cv2.putText(img, text, org, FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _tile(sample: StyledImage, tile: int, detector) -> np.ndarray:
    """The sample at `tile` px with the scorer's detections and verdict drawn on it."""
    img = cv2.resize(sample.image, (tile, tile), interpolation=cv2.INTER_AREA)
    dets = detect(sample.image, detector)
    verdict = judge(dets, sample.spec)
    for d in dets:
        x, y = int(round(d.x * tile)), int(round(d.y * tile))
        marker = COLOR_RGB.get(d.color, (255, 255, 255))
        cv2.drawMarker(img, (x, y), (0, 0, 0), cv2.MARKER_CROSS, 16, 4, cv2.LINE_AA)
        cv2.drawMarker(img, (x, y), (255, 255, 255), cv2.MARKER_CROSS, 16, 2, cv2.LINE_AA)
        cv2.circle(img, (x, y), 4, marker, -1, cv2.LINE_AA)
        label = f"{d.color} {d.shape}"
        (w, _), _ = cv2.getTextSize(label, FONT, 0.42, 1)
        _text(img, label, (min(max(x - w // 2, 2), tile - w - 2), min(y + 22, tile - 6)), 0.42)
    _text(img, f"truth: {sample.spec.relation}", (8, 18), 0.45)
    ok = bool(verdict.correct)
    cv2.rectangle(img, (0, 0), (tile - 1, tile - 1), GREEN if ok else RED, 5)
    return img


def gallery(tile: int = 256, cols: int = 6, seed: int = 0) -> np.ndarray:
    """The contact sheet as an (H, W, 3) uint8 RGB array."""
    detector = load_detector()
    bands = []
    for r, (title, factors) in enumerate(ROWS):
        header = np.full((HEADER, tile * cols, 3), 250, np.uint8)
        cv2.putText(header, title, (8, HEADER - 8), FONT, 0.6, (20, 20, 20), 1, cv2.LINE_AA)
        tiles = [_tile(sample_styled(factors, seed + 1000 * r + c, size=256), tile, detector)
                 for c in range(cols)]
        bands += [header, np.concatenate(tiles, axis=1)]
    return np.concatenate(bands, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "style_gallery.png")
    parser.add_argument("--tile", type=int, default=256, help="tile side in pixels")
    parser.add_argument("--cols", type=int, default=6, help="samples per row")
    parser.add_argument("--seed", type=int, default=0, help="first seed of the sheet")
    args = parser.parse_args()
    sheet = gallery(args.tile, args.cols, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), np.ascontiguousarray(sheet[..., ::-1]),
                       [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SystemExit(f"could not write {args.out}")
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]} px)")


if __name__ == "__main__":
    main()
