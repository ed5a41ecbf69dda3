"""Object detection by colour naming, background modelling and shape fitting (numpy + OpenCV).

Pipeline per image (thresholds in the detector config):
1. downscale to `work_max_side`;
2. model the background from a border strip (`relbench.scoring.background`): a smooth
   surface (gradients, vignettes) plus a texture level;
3. name every pixel by the CIE LCh region it falls in (`relbench.scoring.colour`; one table
   per detector, whatever the background);
4. a pixel is foreground when it has a name and differs from the background model by more
   than the texture allows (black and white need more contrast); a low-chroma pixel that is
   neither black nor white (a shadow, a gray) never is;
5. each connected foreground region is one object, named by its dominant chromatic colour, so
   outline rings, highlights and dark shading inside a shape belong to it; a region shared by
   two colours (touching or overlapping shapes) is split by colour; a region with (almost) no
   chromatic pixel is a black or white object;
6. each object is fitted with the smallest enclosing ellipse-in-rectangle, rectangle and
   triangle and takes the shape it fills best (rotation- and proportion-invariant). An object
   touching another colour may be occluded: its fits are then scored by how much of the fitted
   shape is covered by it *or by the occluder*, so a disk partly hidden by a square is still a
   disk, with the centre of the enclosing shape rather than the visible pixels.

Many images are scored faster together (`detect_batch`, `relbench.scoring.judge.score_batch`):
the pipeline is a sequence of stages (`DETECT_STAGES`), and a batch runs each stage over all its
images before the next, with the same calls and results as one image at a time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar

import cv2
import numpy as np

from relbench.scoring.background import Background, fit_background, lab_of
from relbench.scoring.colour import build_lut, expand, grid_lab, packed
from relbench.scoring.config import DetectorConfig
from relbench.scoring.position import (
    Component,
    at_pixel_centroid,
    object_position,
    pixel_centroid,
)

if TYPE_CHECKING:
    from relbench.scene import RelationSpec
    from relbench.scoring.judge import ScoreResult

BACKGROUND = 0
T = TypeVar("T")
UNASSIGNED = 255
_INF = np.float32(1e9)
_LAB8_WEIGHTS = np.array([(100 / 255) ** 2, 1.0, 1.0], np.float32)


@dataclass(slots=True)
class Detection:
    """A detection: centre x, y in fractions of width/height; area a fraction of the image."""

    shape: str
    color: str
    x: float
    y: float
    area: float
    fit: float
    solidity: float
    occluded: bool

    def words(self) -> str:
        return f"{self.color} {self.shape}"

    def to_dict(self) -> dict:
        return {"shape": self.shape, "color": self.color, "x": round(self.x, 4),
                "y": round(self.y, 4), "area": round(self.area, 4), "fit": round(self.fit, 4),
                "solidity": round(self.solidity, 4), "occluded": self.occluded}

    def where(self) -> str:
        """'red circle at (0.31, 0.62)': for reasons."""
        return f"{self.words()} at ({self.x:.2f}, {self.y:.2f})"


class Detector:
    """A loaded detector config plus its colour-name table; pass it to `detect`/`score_image`."""

    _DIST_CACHE = 3  # flat backgrounds whose distance tables (4 MB each at 6 bits) are kept

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.colors: list[str] = config.palette
        self._grid_lab = grid_lab(config.lut_bits)
        self._names_grid = build_lut(config, self._grid_lab)
        self._lut = expand(self._names_grid, config.lut_bits)
        self._dist: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._seen: OrderedDict[tuple[int, int, int], None] = OrderedDict()
        self._thresholds: dict[float, np.ndarray] = {}
        achromatic = np.array([not r.chromatic for r in config.colours.values()], bool)
        self._achromatic = np.concatenate([[False], achromatic])  # indexed by label
        self._chromatic = np.concatenate([[False], ~achromatic])
        self._label_kinds = (self._chromatic.tolist(), self._achromatic.tolist())  # for Python

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def version(self) -> str:
        return self.config.version

    @property
    def config_hash(self) -> str:
        return self.config.config_hash

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "config_hash": self.config_hash}

    def score(self, image: np.ndarray, spec: RelationSpec) -> ScoreResult:
        """`score_image(image, spec, self)`: the detector is the built-in `Scorer`
        (relbench.scoring.api)."""
        from relbench.scoring.judge import score_image  # judge imports this module

        return score_image(image, spec, self)

    def score_batch(
        self, images: list[np.ndarray], specs: list[RelationSpec]
    ) -> list[ScoreResult | Exception]:
        """`score` on each image of a batch, or the exception that image raised
        (`relbench.scoring.judge.score_batch`): what `relbench score` calls."""
        from relbench.scoring.judge import score_batch

        return score_batch(images, specs, self)

    def names(self, image: np.ndarray) -> np.ndarray:
        """(H, W) uint8 colour-name labels (0 none, i + 1 colour i) of an RGB uint8 image."""
        return self._lut.take(packed(image, self.config.lut_bits))

    def foreground_table(self, bg: Background) -> np.ndarray | None:
        """For a flat background: a uint8 table of each colour cell's distance from it (CIELAB,
        rounded, capped at 255) where that distance makes the cell foreground, 0 where it does
        not; or None. A table takes tens of ms to build, so one is built only for a background
        seen before (rendered suites share one; generated images rarely do), and a few are
        kept; `cell_distances` gives the same values for one image without it."""
        key = bg.key
        table = self._dist.get(key)
        if table is None:
            if key not in self._seen:
                self._seen[key] = None
                while len(self._seen) > 64:
                    self._seen.popitem(last=False)
                return None
            table = expand(self._cell_distances(self._grid_lab, self._names_grid, bg),
                           self.config.lut_bits)
            self._dist[key] = table
            while len(self._dist) > self._DIST_CACHE:
                self._dist.popitem(last=False)
        else:
            self._dist.move_to_end(key)
        return table

    def cell_distances(self, idx: np.ndarray, names: np.ndarray, bg: Background) -> np.ndarray:
        """What `foreground_table(bg)`'s table gives for the `packed` indices `idx` (with colour
        labels `names`), computed for these pixels only: the (H, W) uint8 distance of each
        pixel's colour cell from the flat background where it makes the pixel foreground, 0
        elsewhere. Used for a background met for the first time, so that its first image is
        scored exactly as the later ones are."""
        out = np.zeros(idx.shape, np.uint8)
        x, y, bw, bh = cv2.boundingRect(names)  # only a named pixel can be foreground
        if bw == 0:
            return out
        bits = self.config.lut_bits
        m = (1 << bits) - 1
        sub = idx[y : y + bh, x : x + bw]
        # packed: B' << 16 | G' << 8 | R'; the grid is indexed [R', G', B'] row-major.
        cell = (((sub & m) << bits | (sub >> 8) & m) << bits) | (sub >> 16)
        d8 = self._cell_distances(self._grid_lab.take(cell.reshape(-1), axis=0),
                                  names[y : y + bh, x : x + bw].reshape(-1), bg)
        out[y : y + bh, x : x + bw] = d8.reshape(bh, bw)
        return out

    def _cell_distances(self, lab: np.ndarray, labels: np.ndarray, bg: Background) -> np.ndarray:
        """(N,) uint8: the CIELAB distance of colour cells `lab` (N, 3) from the flat background
        `bg`'s rounded colour, rounded and capped at 255, and 0 where it does not make a pixel
        of colour label `labels` (N,) foreground: the one rule of a flat background's table."""
        d = np.linalg.norm(lab - np.asarray(bg.key, np.float32), axis=1)
        d8 = np.minimum(np.rint(d), 255).astype(np.uint8)
        d8[d8 <= self.thresholds(bg).take(labels)] = 0
        return d8

    def thresholds(self, bg: Background) -> np.ndarray:
        """Per label: the colour distance from the background a pixel needs to be foreground
        (read-only; the same array for the same texture level)."""
        return self.threshold_lut(bg)[0, : len(self.colors) + 1]

    def threshold_lut(self, bg: Background) -> np.ndarray:
        """`thresholds(bg)` as a read-only (1, 256) float32 table for `cv2.LUT` (labels past
        the palette are never foreground), one per texture level."""
        out = self._thresholds.get(bg.sigma)
        if out is None:
            cfg = self.config
            thr = max(cfg.fg_min_delta_e, cfg.fg_noise_k * bg.sigma)
            out = np.full((1, 256), _INF, np.float32)
            labels = out[0, : len(self.colors) + 1]
            labels[self._chromatic] = thr
            labels[self._achromatic] = max(thr, cfg.achromatic_min_delta_e)
            out.flags.writeable = False
            if len(self._thresholds) >= 256:
                self._thresholds.clear()
            self._thresholds[bg.sigma] = out
        return out


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Validate a (H, W, 3) uint8 RGB array; other layouts raise a ValueError saying why."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy image array, got {type(image).__name__}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ValueError("grayscale image; colour is needed")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ValueError(f"image too small to score: {image.shape[1]}x{image.shape[0]}")
    return np.ascontiguousarray(image)


def estimate_background(image: np.ndarray) -> np.ndarray:
    """Median RGB of the border pixels (objects rarely cover most of the border)."""
    border = np.concatenate([image[0, ::2], image[-1, ::2], image[1:-1:2, 0], image[1:-1:2, -1]])
    mid = len(border) // 2
    return np.partition(border, mid, axis=0)[mid].astype(np.float64)


@dataclass
class Segmentation:
    """What detection saw, at working resolution: colour-name labels, the foreground, and the
    outer contours of the connected foreground regions (a region inside another's hole, such as
    a fill inside its outline ring, belongs to the outer one).

    On a familiar flat background the foreground comes from one table lookup and no label is
    needed outside the regions: `names` is then None and `names_in` looks the labels of a box
    up from the colour-table indices `index` and the detector's name table `name_table`."""

    image: np.ndarray
    names: np.ndarray | None
    foreground: np.ndarray
    regions: tuple
    background: Background
    index: np.ndarray | None = None
    name_table: np.ndarray | None = None

    def names_in(self, x: int, y: int, bw: int, bh: int) -> np.ndarray:
        """The (bh, bw) colour-name labels of the box at (x, y)."""
        if self.names is not None:
            return self.names[y : y + bh, x : x + bw]
        return self.name_table.take(self.index[y : y + bh, x : x + bw])


def _work_image(image: np.ndarray, max_side: int) -> np.ndarray:
    h0, w0 = image.shape[:2]
    if max(h0, w0) <= max_side:
        return image
    scale = max_side / max(h0, w0)
    size = (max(8, round(w0 * scale)), max(8, round(h0 * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def segment(image: np.ndarray, detector: Detector) -> Segmentation:
    """Background model, colour names and foreground regions of an RGB uint8 image."""
    state = Work(image)
    for stage in SEGMENT_STAGES:
        stage(state, detector)
    return state.seg


def _distances_from(
    image: np.ndarray, detector: Detector, bg: Background, flat: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, Background, np.ndarray | None]:
    """(image, colour-name labels, CIELAB distance of each pixel from the background, the
    background, the colour-table indices), given the background: `flat` when
    `_flat_background` found it, else it was fitted (`fit_background`). With a flat background
    the indices are given and the distances are 0 wherever a pixel is not foreground; the
    labels are then None when the background is familiar (its table gives the foreground
    without them)."""
    cfg = detector.config
    if flat:
        # A flat background: distances from the colour cells' table, so that an image's result
        # does not depend on whether the process has met its background before.
        idx = packed(image, cfg.lut_bits)
        table = detector.foreground_table(bg)
        if table is not None:  # a familiar background: its whole table is built
            return image, None, table.take(idx), bg, idx
        names = detector._lut.take(idx)
        return image, names, detector.cell_distances(idx, names, bg), bg, idx
    h, w = image.shape[:2]
    names = detector.names(image)
    # Only a named pixel can be foreground, and only foreground distances are used later (the
    # edge rule reads them; its weak-pixel test then still finds every weak foreground one),
    # so distances are computed inside the box around the named pixels and left 0 elsewhere.
    x, y, bw, bh = cv2.boundingRect(names)
    dist = np.zeros((h, w), np.float32)
    if bw == 0:
        return image, names, dist, bg, None
    lab8 = cv2.cvtColor(image[y : y + bh, x : x + bw], cv2.COLOR_RGB2Lab)
    model = bg.model8(h, w)
    if model.ndim == 1:  # flat: a per-channel scalar
        model = (float(model[0]), float(model[1]), float(model[2]), 0.0)
    else:
        model = model[y : y + bh, x : x + bw]
    diff = cv2.subtract(lab8, model, dtype=cv2.CV_32F)
    # CIELAB distance from the background (8-bit L scaled back to L*).
    dist[y : y + bh, x : x + bw] = cv2.sqrt(
        cv2.transform(cv2.multiply(diff, diff), _LAB8_WEIGHTS.reshape(1, 3)))
    return image, names, dist, bg, None


class Work:
    """One image on its way through the detection stages (`DETECT_STAGES`), each of which fills
    in what the next one reads; `error` is what a stage raised, after which it goes no
    further."""

    __slots__ = ("image", "bg", "flat", "names", "dist", "index", "fg", "seg", "parts",
                 "dets", "spec", "result", "error")

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.error: Exception | None = None


def _st_prepare(s: Work, detector: Detector) -> None:
    s.image = _work_image(to_rgb_uint8(s.image), detector.config.work_max_side)


def _st_flat(s: Work, detector: Detector) -> None:
    s.bg = _flat_background(s.image, detector.config)
    s.flat = s.bg is not None


def _st_fit(s: Work, detector: Detector) -> None:
    if not s.flat:
        s.bg = fit_background(s.image, detector.config)


def _st_distances(s: Work, detector: Detector) -> None:
    s.image, s.names, s.dist, s.bg, s.index = _distances_from(s.image, detector, s.bg, s.flat)


def _st_foreground(s: Work, detector: Detector) -> None:
    if s.index is not None:  # a flat background: 0 off the foreground
        s.fg = (s.dist > 0).view(np.uint8)
    else:  # each pixel's threshold by its label (OpenCV's table lookup: the same values)
        s.fg = np.greater(s.dist, cv2.LUT(s.names, detector.threshold_lut(s.bg))).view(np.uint8)


def _st_trim(s: Work, detector: Detector) -> None:
    if detector.config.edge_radius_px > 0:
        _trim_edges(s.fg, s.dist, detector.thresholds(s.bg), detector.config)


def _st_regions(s: Work, detector: Detector) -> None:
    contours, _ = cv2.findContours(s.fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    s.seg = Segmentation(s.image, s.names, s.fg, contours, s.bg, s.index, detector._lut)
    s.dist = None  # read by no later stage: a batch keeps less


def _st_objects(s: Work, detector: Detector) -> None:
    s.parts = _objects(s.seg, detector)


def _st_detections(s: Work, detector: Detector) -> None:
    s.dets = _detections(s.seg, s.parts, detector)
    s.seg = s.parts = None


SEGMENT_STAGES = (_st_prepare, _st_flat, _st_fit, _st_distances, _st_foreground, _st_trim,
                  _st_regions)
DETECT_STAGES = SEGMENT_STAGES + (_st_objects, _st_detections)
"""`detect`, split where one image's work hands over to the next step's: a batch runs each
stage over all its images before the next stage (`run_stages`)."""


def run_stages(states: list, stages, detector: Detector) -> None:
    """Run `stages` over `states`, each stage over every state before the next one: the same
    calls as one state at a time, in an order that keeps each stage's code and tables in the
    processor's caches across a batch (about a fifth faster than image by image on small
    images). A stage that raises sets that state's `error` and the later stages skip it; other
    states go on."""
    live = states
    for stage in stages:
        failed = False
        for s in live:
            try:
                stage(s, detector)
            except Exception as e:  # noqa: BLE001 - the image's own error, reported with it
                s.error = e
                failed = True
        if failed:
            live = [s for s in live if s.error is None]


def detect_batch(
    images: list[np.ndarray], detector: Detector
) -> list[list[Detection] | Exception]:
    """`detect` on each image of a batch, or the exception that image raised (one bad image
    fails alone): the same detections as `detect`, faster on many images (`run_stages`, over
    `batched` lists of them)."""
    states = [Work(image) for image in images]
    run_batches(states, DETECT_STAGES, detector)
    return [s.dets if s.error is None else s.error for s in states]


def run_batches(states: list[Work], stages, detector: Detector) -> None:
    """`run_stages` over `states` in `batched` lists: a long list is staged a few dozen images
    at a time."""
    for part in batched(states, _image_of):
        run_stages(part, stages, detector)


BATCH_ROWS = 64
BATCH_PIXELS = 1 << 20
"""Images staged together (`batched`): up to BATCH_ROWS, or fewer whose pixels reach
BATCH_PIXELS (64 images of 128 px, 4 of 512 px, one of 1024 px). Every image's working arrays
are kept until its batch ends: small images gain from running each stage's code many times in
a row, large ones lose once their arrays no longer stay in the processor's caches."""


def batched(items: Iterable[T], image_of: Callable[[T], Any]) -> Iterator[list[T]]:
    """`items` in consecutive lists of at most BATCH_ROWS, a list ending early once the images
    `image_of` gives for its items hold BATCH_PIXELS pixels (anything that is not an image
    counts none). Streams: an item is taken only when its list needs it."""
    batch: list[T] = []
    pixels = 0
    for item in items:
        batch.append(item)
        shape = getattr(image_of(item), "shape", ())
        if len(shape) >= 2:
            pixels += shape[0] * shape[1]
        if len(batch) >= BATCH_ROWS or pixels >= BATCH_PIXELS:
            yield batch
            batch, pixels = [], 0
    if batch:
        yield batch


def _image_of(s: Work) -> Any:
    return s.image


def _has_weak_pixels(dist: np.ndarray, thresholds: np.ndarray, split: float) -> bool:
    """Whether any pixel's distance lies between the lowest foreground threshold and `split` of
    the largest distance: without one (a hard-edged flat render) there is no edge to trim.
    Called on the box around the foreground: pixels outside it are not foreground, and the
    edge rule changes only foreground pixels."""
    top = cv2.minMaxLoc(dist)[1]
    low = min(thresholds.tolist()[1:])  # a few labels: Python's min beats numpy's call
    return low < split * top and cv2.countNonZero(
        cv2.inRange(dist, np.float64(low), np.float64(split * top))) > 0


def _trim_edges(fg: np.ndarray, dist: np.ndarray, thresholds: np.ndarray,
                cfg: DetectorConfig) -> None:
    """Split edges at a share of the nearby object's contrast, in place.

    A pixel near the background counts only if it is at least `edge_split` of the way from the
    background to the mean colour distance of the foreground around it (a window a few times
    the edge radius), so anti-aliasing, blur and JPEG chroma bleed do not grow a shape,
    whatever its contrast; one bright highlight or dark outline pixel cannot set the level.
    Pixels away from the background are never trimmed, so the rule cannot cut a shade or a
    fill apart.

    `dist` is float32 CIELAB distances, or a flat background's uint8 table distances, which
    are 0 exactly where `fg` is (`segment` takes `fg` as `dist > 0` then).
    """
    r = cfg.edge_radius_px
    # Only pixels near the foreground's bounding box matter: outside it nothing is foreground,
    # and within 2r of it every window lies inside the box grown by 2r (or meets the image
    # edge, as it would anyway).
    x, y, bw, bh = cv2.boundingRect(fg)
    if bw == 0:
        return
    m = 2 * r
    y0, y1 = max(0, y - m), min(fg.shape[0], y + bh + m)
    x0, x1 = max(0, x - m), min(fg.shape[1], x + bw + m)
    d = dist[y0:y1, x0:x1]
    # Without a weak pixel the rule keeps every foreground pixel: a hard-edged render (whole
    # table distances) skips it. Fitted backgrounds nearly always have weak pixels (shading,
    # anti-aliasing, texture), so there the test is not worth its cost.
    if d.dtype == np.uint8 and not _has_weak_pixels(d, thresholds, cfg.edge_split):
        return
    roi = np.ascontiguousarray(fg[y0:y1, x0:x1])
    inner = cv2.erode(roi, _square(2 * r + 1))  # 0 where a background pixel lies within r
    window = (4 * r + 1, 4 * r + 1)
    mass = cv2.boxFilter(roi, cv2.CV_32F, window, normalize=False)
    if d.dtype == np.uint8:
        # Whole distances that are 0 off the foreground (a flat background's table): their sum
        # is the foreground's, and exact in any order.
        level = cv2.boxFilter(d, cv2.CV_32F, window, normalize=False)
        d = d.astype(np.float32)
    else:
        d = np.ascontiguousarray(d, dtype=np.float32)
        level = cv2.boxFilter(cv2.multiply(roi, d, dtype=cv2.CV_32F), -1, window, normalize=False)
    # A foreground pixel's window holds at least itself; elsewhere OpenCV's x / 0 = 0 and the
    # pixel is not foreground anyway.
    level = cv2.multiply(level, cv2.divide(cfg.edge_split, mass))
    keep = cv2.bitwise_or(inner, cv2.compare(d, level, cv2.CMP_GE))
    np.bitwise_and(roi, keep, out=fg[y0:y1, x0:x1])


@lru_cache(maxsize=8)
def _square(side: int) -> np.ndarray:
    """A square structuring element."""
    return cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))


def _flat_background(image: np.ndarray, cfg: DetectorConfig) -> Background | None:
    """A constant background when nearly all border pixels share one colour (rendered scenes,
    flat generated backgrounds), else None."""
    border = image.reshape(-1, 3).take(_border_index(*image.shape[:2]), axis=0)  # (N, 3)
    mid = len(border) // 2
    r, g, b = np.partition(border, mid, axis=0)[mid].tolist()
    t = cfg.flat_border_tolerance
    close = cv2.countNonZero(cv2.inRange(border.reshape(1, -1, 3), (r - t, g - t, b - t),
                                         (r + t, g + t, b + t)))
    if close < cfg.flat_border_share * len(border):
        return None
    return _flat_model(r, g, b)


@lru_cache(maxsize=16)
def _border_index(h: int, w: int) -> np.ndarray:
    """Flat pixel indices of ~256 samples along the image border (top and bottom rows, then
    the left and right columns)."""
    step = max(1, min(h, w) // 64)
    top = np.arange(0, w, step)
    side = np.arange(1, h - 1, step)
    return np.concatenate([top, (h - 1) * w + top, side * w, side * w + w - 1])


@lru_cache(maxsize=64)
def _flat_model(r: int, g: int, b: int) -> Background:
    """The flat background model of one RGB colour (cached: a suite shares its background)."""
    lab = lab_of(np.array([[[r, g, b]]], np.uint8)).reshape(3)
    coef = lab.reshape(3, 1).astype(np.float32)
    coef.flags.writeable = False
    return Background(coef=coef, degree=0, sigma=0.0)


def label_pixels(image: np.ndarray, detector: Detector) -> np.ndarray:
    """(H, W) uint8 at the image's own resolution: 0 background, i + 1 where an object of
    palette colour i was found (outlines and highlights inside it included)."""
    return detect_labelled(image, detector)[1]


def detect_labelled(image: np.ndarray, detector: Detector) -> tuple[list[Detection], np.ndarray]:
    """`detect` and `label_pixels` from one segmentation."""
    image = to_rgb_uint8(image)
    seg = segment(image, detector)
    parts = _objects(seg, detector)
    labels = np.zeros(seg.foreground.shape, np.uint8)
    for part in parts:
        if part.box is not None:
            x, y, bw, bh = part.box
            labels[y : y + bh, x : x + bw][part.mask > 0] = part.label
        else:
            labels[part.mask > 0] = part.label
    if labels.shape != image.shape[:2]:
        labels = cv2.resize(labels, (image.shape[1], image.shape[0]),
                            interpolation=cv2.INTER_NEAREST)
    return _detections(seg, parts, detector), labels


@dataclass
class _Part:
    """One object's pixels at working resolution: `mask` (H, W) uint8, its colour label, and
    the mask of every object pixel of its region (for the occlusion test), if shared."""

    mask: np.ndarray
    label: int
    shared: np.ndarray | None
    contour: np.ndarray | None = None  # a single-colour region: its convex hull on the box,
    box: tuple[int, int, int, int] | None = None  # ... its bounding box (`mask` is a crop),
    hull_area: float = 0.0  # ... the pixel count of the filled hull,
    pixels: float = 0.0  # ... and of its foreground (how solid the region really is)
    solid: np.ndarray | None = None  # ... and the filled hull itself, on the box


def _objects(seg: Segmentation, detector: Detector) -> list[_Part]:
    """Split the foreground regions into single-colour objects."""
    cfg = detector.config
    h, w = seg.foreground.shape
    min_area = cfg.min_area_frac * h * w
    n_labels = len(detector.colors) + 1
    chromatic, achromatic_label = detector._label_kinds
    # Shares and areas compare in float32, as they always have (the counts are float32).
    frac32, min_area32 = np.float32(cfg.split_min_frac), float(np.float32(min_area))
    parts: list[_Part] = []
    for c in seg.regions:
        if cv2.contourArea(c) + 0.5 * len(c) < min_area:  # polygon + half perimeter ≈ pixels
            continue
        x, y, bw, bh = cv2.boundingRect(c)
        # Every shape relbench names is convex, so a one-colour object is its region's convex
        # hull: bites from a dark outline half-lost on a dark background, from shading or from
        # noise do not change its shape or centre. Colour votes come from the foreground pixels
        # inside the hull (separate convex shapes have disjoint hulls; shapes that touch form
        # one region, split by colour below).
        hull = cv2.convexHull(c)
        np.subtract(hull, (x, y), out=hull)  # on the box, as the shape fits take it
        solid = np.zeros((bh, bw), np.uint8)
        cv2.drawContours(solid, [hull], -1, 1, cv2.FILLED)
        names = seg.names_in(x, y, bw, bh)
        votes = cv2.bitwise_and(solid, seg.foreground[y : y + bh, x : x + bw])
        # A few labels: plain Python beats numpy's per-call cost here.
        counts = cv2.calcHist([names], [0], votes, [n_labels], [0, n_labels]).ravel().tolist()
        chrom = [n if ok else 0.0 for n, ok in zip(counts, chromatic)]
        total, pixels = sum(chrom), sum(counts)  # whole numbers: exact
        achromatic = total < float(frac32 * np.float32(pixels))  # a black or white object
        keep = max(float(frac32 * np.float32(total)), min_area32)
        colours = [k for k, n in enumerate(chrom) if n >= keep]
        filled = np.zeros((bh, bw), np.uint8)
        cv2.drawContours(filled, [c], -1, 1, cv2.FILLED, offset=(-x, -y))
        if achromatic or len(colours) <= 1:
            # Shape fits use the hull's area; the position uses the region's own pixels (holes
            # filled), which a clean shape gives exactly and a ragged one nearly so.
            votes_of = [n if ok else 0.0 for n, ok in zip(counts, achromatic_label)] \
                if achromatic else chrom
            label = votes_of.index(max(votes_of))  # the first of the largest, as argmax
            parts.append(_Part(filled, label, None, hull, (x, y, bw, bh),
                               float(cv2.countNonZero(solid)), float(pixels), solid))
            continue
        region = np.zeros((h, w), np.uint8)
        region[y : y + bh, x : x + bw] = filled
        # Two colours share the region: touching or overlapping shapes. Pixels of neither
        # colour (the blend where they meet, an outline between them) belong to no shape but
        # stay in the region, so the occlusion test still sees the shapes touch.
        for k in colours:
            own = np.zeros((h, w), np.uint8)
            own[y : y + bh, x : x + bw] = filled & (names == k)
            parts.append(_Part(own, k, region))
    return parts


def detect(image: np.ndarray, detector: Detector) -> list[Detection]:
    """Objects in an RGB uint8 image, largest first."""
    state = Work(image)
    for stage in DETECT_STAGES:
        stage(state, detector)
    return state.dets


def _detections(seg: Segmentation, parts: list[_Part], detector: Detector) -> list[Detection]:
    """Fit each object part with a shape and place it; largest first."""
    cfg = detector.config
    h, w = seg.foreground.shape
    min_area = cfg.min_area_frac * h * w
    out: list[Detection] = []
    for part in parts:
        if part.contour is not None:  # a whole region: its contour and filled crop are known
            x, y, bw, bh = part.box
            area = part.hull_area
            solid_share = part.pixels / max(part.hull_area, 1.0)
            det = _fit(part.contour, area, part.label, part.mask, None, detector, (h, w),
                       (x, y), solid_share, is_hull=True, solid=part.solid)
            if det is not None:
                out.append(det)
            continue
        contours, hier = cv2.findContours(part.mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        holes: dict[int, float] = {}
        for i, (_, _, _, parent) in enumerate(hier[0]):
            if parent >= 0:
                holes[parent] = holes.get(parent, 0.0) + cv2.contourArea(contours[i])
        for i, c in enumerate(contours):
            if hier[0][i][3] >= 0:
                continue
            outer = cv2.contourArea(c)
            if outer + 0.5 * len(c) < min_area:  # polygon area + half the perimeter ≈ pixel count
                continue
            x, y, bw, bh = cv2.boundingRect(c)
            # Pixel count (holes refilled): comparable with the pixel-corner fits.
            count = cv2.countNonZero(part.mask[y : y + bh, x : x + bw]) + holes.get(i, 0.0)
            det = _fit(c, count, part.label, part.mask, part.shared, detector, (h, w))
            if det is not None:
                out.append(det)
    for d in out:  # back to fractions of the image
        d.x, d.y = d.x / w, d.y / h
    out.sort(key=lambda d: -d.area)
    return out


def _fit(
    contour: np.ndarray,
    area: float,
    k: int,
    mask: np.ndarray,
    objmask: np.ndarray | None,
    detector: Detector,
    hw: tuple[int, int],
    origin: tuple[int, int] = (0, 0),
    solid_share: float = 1.0,
    is_hull: bool = False,
    solid: np.ndarray | None = None,
) -> Detection | None:
    """Classify one component by which enclosing shape it fills best, and place its centre.

    Fits run on the convex hull of the boundary pixel centres; areas compare with the pixel
    count, so the hull is grown by half a pixel (circle radius + 0.5, rectangle sides + 1,
    hull area + perimeter/2 + 1) to cover the pixels' extent rather than their centres.
    """
    cfg = detector.config
    h, w = hw
    hull = contour if is_hull else cv2.convexHull(contour)
    hull_area = cv2.contourArea(hull) + cv2.arcLength(hull, True) / 2 + 1
    # For a region replaced by its hull (`area` is the hull's), `solid_share` says how much of
    # the hull its foreground really fills: ragged artefacts (JPEG ringing, texture) fail here.
    solidity = area / hull_area * solid_share
    if solidity < cfg.min_solidity:
        return None
    (rcx, rcy), (rw, rh), angle = cv2.minAreaRect(hull)
    rect = ((rcx, rcy), (rw + 1, rh + 1), angle)
    rect_fill = area / ((rw + 1) * (rh + 1))
    # The fits, in the order circle, square, triangle; the best is the first of the largest.
    # Circle: overlap with the ellipse inscribed in the minimum-area rectangle: ~1 for a disk or
    # an ellipse of any proportion and orientation, pi/4 for a square, ~0.6 for a triangle,
    # rounded corners and all (an enclosing circle would call any ellipse a poor circle). A
    # disk fills pi/4 of its rectangle, so outside `circle_rect_fill` it cannot be one and the
    # drawing is skipped.
    lo, hi = cfg.circle_rect_fill
    circle = _ellipse_overlap(hull, rect, solid) if lo <= rect_fill < hi else 0.0
    square = rect_fill
    triangle = 0.0
    occluded = objmask is not None and _touches_other(contour, mask, objmask,
                                                       cfg.occlusion_margin_px)
    tri = None
    if occluded or _best(circle, square, 0.0) < cfg.skip_triangle_above:
        # Through pixel centres, not grown: growing by a pixel square offsets the slanted sides
        # more than the base and would bias the centroid upward.
        tri_area, tri = cv2.minEnclosingTriangle(hull)
        tri = tri.reshape(3, 2)
        # The fill compares pixel counts with the triangle grown to pixel extents (the fit
        # itself stays through pixel centres for the position).
        grown = tri_area + cv2.arcLength(tri.reshape(-1, 1, 2), True) / 2 + 1
        triangle = area / grown if tri_area > 0 else 0.0
    if occluded and _best(circle, square, triangle) >= cfg.whole_fit:
        occluded = False  # it touches another object but is a whole shape on its own
    centre = None  # the enclosing circle's centre: only a hidden circle is placed there
    if occluded:
        (ccx, ccy), r = cv2.minEnclosingCircle(hull)
        r += 0.5
        centre = (ccx, ccy)
        # Score each fitted shape by how much of it this object *or an occluder* covers.
        box, tri_px = _px(cv2.boxPoints(rect)), _px(tri)
        circle = _covered(objmask, lambda m: cv2.circle(m, *_circle_args(ccx, ccy, r)))
        square = _covered(objmask, lambda m: cv2.fillPoly(m, [box], 1, cv2.LINE_8, _SHIFT))
        triangle = _covered(objmask, lambda m: cv2.fillPoly(m, [tri_px], 1, cv2.LINE_8, _SHIFT))
    # The first of the largest, as max() over (circle, square, triangle) gives it.
    shape, fit = "circle", circle
    if square > fit:
        shape, fit = "square", square
    if triangle > fit:
        shape, fit = "triangle", triangle
    if fit < cfg.min_fit:
        shape = "unknown"
    # Which point stands for the object: the config's position convention (scoring/position.py).
    if at_pixel_centroid(shape, bool(occluded)):  # `object_position`'s answer, without a Component
        # A hull's crop is its box, so the centroid is the whole mask's.
        cx, cy = pixel_centroid(None if is_hull else contour, mask)
    else:
        comp = Component(shape, contour, mask, centre, rect, tri, bool(occluded))
        cx, cy = object_position(comp, cfg.position)
    # `contour` and `mask` are in a crop whose pixel (0, 0) is image pixel `origin`; pixel
    # index -> continuous coordinate (pixel i's centre is i + 0.5). Fields in Detection's order.
    return Detection(shape, detector.colors[k - 1], float(cx) + origin[0] + 0.5,
                     float(cy) + origin[1] + 0.5, area / (h * w), float(min(fit, 1.0)),
                     float(min(solidity, 1.0)), bool(occluded))


def _best(a: float, b: float, c: float) -> float:
    """max(a, b, c), as max() gives it (the first of the largest), without its call cost."""
    if b > a:
        a = b
    return c if c > a else a


def _ellipse_overlap(hull: np.ndarray, rect, solid: np.ndarray | None = None) -> float:
    """Intersection over union of the filled hull and the ellipse inscribed in `rect` (a
    rotated rectangle grown to pixel extents). `solid`, when given, is the hull already filled
    on its bounding box (`cv2.drawContours`, which fills a polygon of whole-pixel vertices
    exactly as `cv2.fillPoly` does)."""
    hx, hy, hw, hh = cv2.boundingRect(hull)
    if solid is None:
        solid = np.zeros((hh, hw), np.uint8)
        cv2.drawContours(solid, [hull], -1, 1, cv2.FILLED, offset=(-hx, -hy))
    # The ellipse is drawn on a canvas that holds both shapes with a margin; shifting both by
    # whole pixels does not change how they rasterise, so any canvas that holds them gives the
    # same counts. A bounding box of points depends only on their extremes, so the box of the
    # rectangle's corners and the hull's is the union of their boxes.
    bx, by, bw, bh = cv2.boundingRect(cv2.boxPoints(rect))
    x0, y0 = min(bx, hx) - 1, min(by, hy) - 1
    ellipse = np.zeros((max(by + bh, hy + hh) - y0 + 2, max(bx + bw, hx + hw) - x0 + 2), np.uint8)
    (cx, cy), (rw, rh), angle = rect
    f = 1 << _SHIFT
    centre = (int(round((cx - x0) * f)), int(round((cy - y0) * f)))
    # `rect` is grown to pixel extents; drawn outlines include their boundary pixels, so the
    # ellipse is drawn through the boundary pixel centres (half a pixel in on each side).
    axes = (int(round((rw - 1) / 2 * f)), int(round((rh - 1) / 2 * f)))
    cv2.ellipse(ellipse, centre, axes, angle, 0, 360, 1, -1, cv2.LINE_8, _SHIFT)
    oy, ox = hy - y0, hx - x0
    inter = cv2.countNonZero(cv2.bitwise_and(ellipse[oy : oy + hh, ox : ox + hw], solid))
    union = cv2.countNonZero(solid) + cv2.countNonZero(ellipse) - inter
    return inter / union if union else 0.0


def _touches_other(contour: np.ndarray, mask: np.ndarray, objmask: np.ndarray, margin: int) -> bool:
    x, y, bw, bh = cv2.boundingRect(contour)
    m = margin + 1
    y0, y1 = max(0, y - m), min(mask.shape[0], y + bh + m)
    x0, x1 = max(0, x - m), min(mask.shape[1], x + bw + m)
    own, near = mask[y0:y1, x0:x1], objmask[y0:y1, x0:x1]
    n_own = cv2.countNonZero(own)
    if cv2.countNonZero(near) == n_own:
        return False  # no other object pixel near this component
    # `own` lies within `objmask` (both 0/1) and within its own dilation, so the grown
    # component meets another object's pixel exactly when it covers more of `objmask` than
    # its own pixels.
    grown = cv2.dilate(own, _square(2 * m + 1))
    return cv2.countNonZero(cv2.bitwise_and(grown, near)) > n_own


_SHIFT = 4  # sub-pixel bits for drawing fitted shapes


def _px(poly: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(poly, dtype=np.float64) * (1 << _SHIFT)).astype(np.int32)


def _circle_args(cx: float, cy: float, r: float):
    c = (int(round(cx * (1 << _SHIFT))), int(round(cy * (1 << _SHIFT))))
    return c, int(round(r * (1 << _SHIFT))), 1, -1, cv2.LINE_8, _SHIFT


def _covered(support: np.ndarray, draw) -> float:
    """Fraction of a drawn shape's pixels (drawn on a zero canvas) that are object pixels."""
    canvas = np.zeros(support.shape, np.uint8)
    draw(canvas)
    n = cv2.countNonZero(canvas)
    if n == 0:
        return 0.0
    return cv2.countNonZero(cv2.bitwise_and(canvas, support)) / n
