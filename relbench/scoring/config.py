"""Detector configs: every threshold of the scorer, loaded from `detectors/*.json`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import (
    BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator,
)

from relbench.resources import detectors_dir
from relbench.scene import check_convention, did_you_mean

if TYPE_CHECKING:
    from relbench.scoring.detect import Detector

RGB = tuple[int, int, int]


class ColourRegion(BaseModel):
    """A colour name as a region of CIE LCh (D65): a hue interval (degrees, may wrap through 0)
    with a minimum chroma for chromatic names, or a maximum chroma for achromatic ones (black,
    white), each within a lightness interval (L* 0..100)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hue: tuple[float, float] | None = Field(
        default=None, description="[from, to) hue angle in degrees; from > to wraps through 0"
    )
    min_chroma: float = Field(default=0.0, ge=0, le=200)
    max_chroma: float = Field(default=200.0, ge=0, le=200)
    lightness: tuple[float, float] = Field(default=(0.0, 100.0))

    @model_validator(mode="after")
    def _ok(self) -> "ColourRegion":
        lo, hi = self.lightness
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"lightness must be 0 <= from < to <= 100, got {self.lightness}")
        if self.hue is not None and not all(0 <= h <= 360 for h in self.hue):
            raise ValueError(f"hue angles must lie in 0..360, got {self.hue}")
        if self.min_chroma >= self.max_chroma:
            raise ValueError("min_chroma must be below max_chroma")
        return self

    @property
    def chromatic(self) -> bool:
        return self.hue is not None


class DetectorConfig(BaseModel):
    """A versioned scorer configuration (colour names and thresholds); see detectors/default.json.

    Pipeline (relbench.scoring.detect): downscale to `work_max_side`; model the background from
    a border strip (a robust low-order polynomial per CIELAB channel, so gradients and vignettes
    are background) and measure its texture; a pixel is foreground when it differs from the model
    by more than the texture allows and its colour has a palette name (a low-chroma pixel that is
    neither black nor white, such as a shadow, never is); each connected foreground region is one
    object named by its dominant chromatic colour (outlines and highlights inside it are part of
    it), or split by colour when two colours share it (overlap); shapes are fitted to each
    region's outer contour.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(max_length=100)
    version: str = Field(max_length=40)
    description: str = Field(default="", max_length=2000)
    colours: dict[str, ColourRegion] = Field(description="colour name -> LCh region")
    background: RGB = Field(description="fill for transparent pixels when the border cannot tell")
    position: Literal["centroid", "bbox", "paper_anchor"] = Field(
        default="centroid", description="which point stands for an object"
    )
    lut_bits: int = Field(ge=4, le=7, description="bits per channel of the colour-name table")
    work_max_side: int = Field(ge=32, le=4096, description="larger images are downscaled to this")
    border_frac: float = Field(gt=0, le=0.2, description="width of the background border strip")
    background_degree: int = Field(ge=0, le=2, description="polynomial degree of the bg model")
    background_outlier_k: float = Field(
        gt=0, le=100, description="border pixels beyond k robust sigmas are refitted as objects"
    )
    background_outlier_min_delta_e: float = Field(
        ge=0, le=100, description="... and never nearer the fit than this CIELAB distance"
    )
    background_samples: int = Field(
        ge=32, le=4096, description="border pixels sampled for the background fit"
    )
    background_min_sigma: float = Field(
        ge=0, le=50, description="floor of the border texture level of a non-flat border"
    )
    flat_fit_delta_e: float = Field(
        ge=0, le=50, description="a border sample this close to the border's mean colour is flat"
    )
    flat_fit_share: float = Field(
        gt=0, le=1, description="a border with this share of flat samples gets no surface fit"
    )
    flat_border_tolerance: int = Field(
        ge=0, le=64, description="RGB levels from the border median that count as the same "
        "colour in the flat-background test"
    )
    flat_border_share: float = Field(
        gt=0, le=1, description="share of border pixels within the tolerance that makes a "
        "background flat (a constant colour: table lookups instead of a fit)"
    )
    fg_min_delta_e: float = Field(gt=0, le=100, description="min CIELAB distance from background")
    fg_noise_k: float = Field(ge=0, le=100, description="min distance in border-texture sigmas")
    achromatic_min_delta_e: float = Field(
        gt=0, le=100, description="min distance from background of a black or white pixel"
    )
    edge_radius_px: int = Field(
        ge=0, le=16, description="neighbourhood (working px) searched for an edge's contrast"
    )
    edge_split: float = Field(ge=0, lt=1, description="edge pixels below this contrast share are bg")
    split_min_frac: float = Field(
        gt=0, lt=1, description="a second colour with this share of a region is its own object"
    )
    min_area_frac: float = Field(gt=0, lt=1, description="smaller components are specks")
    min_solidity: float = Field(ge=0, le=1, description="min area / hull area of an object")
    min_fit: float = Field(ge=0, le=1, description="best shape fill below this gives 'unknown'")
    circle_rect_fill: tuple[float, float] = Field(
        description="[from, to) share of its minimum-area rectangle a disk or ellipse can fill "
        "(pi/4 drawn exactly); outside it the circle fit is not tried"
    )
    skip_triangle_above: float = Field(
        ge=0, le=1, description="circle/square fill above which the triangle fit is skipped"
    )
    occlusion_margin_px: int = Field(ge=0, le=64, description="occluder search distance")
    whole_fit: float = Field(
        gt=0, le=1.01, description="a touching object that fits a shape this well on its own is "
        "taken as whole, not hidden"
    )

    _hash: str = PrivateAttr(default="")

    @field_validator("colours")
    @classmethod
    def _colours_ok(cls, v: dict[str, ColourRegion]) -> dict[str, ColourRegion]:
        if not v:
            raise ValueError("colours is empty")
        if len(v) > 250:
            raise ValueError(f"at most 250 colour names are supported, got {len(v)}")
        return v

    @field_validator("version")
    @classmethod
    def _version_ok(cls, v: str) -> str:
        from relbench.versions import check_release

        return check_release(v, "detector version")

    @field_validator("circle_rect_fill")
    @classmethod
    def _fill_range_ok(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] < v[1] <= 1:
            raise ValueError(f"must be 0 <= from < to <= 1, got {list(v)}")
        return v

    @field_validator("position", mode="before")
    @classmethod
    def _position_ok(cls, v: object) -> object:
        return check_convention(str(v))

    @property
    def palette(self) -> list[str]:
        """The colour names, in config order (label i + 1 is name i)."""
        return list(self.colours)

    @property
    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the config."""
        if not self._hash:
            canon = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
            object.__setattr__(self, "_hash", hashlib.sha256(canon.encode()).hexdigest())
        return self._hash


def load_detector(name_or_path: str | Path = "default") -> "Detector":
    """A ready detector from a config name in `detectors/` or a path to a JSON file."""
    from relbench.scoring.detect import Detector

    path = Path(name_or_path)
    if not (path.suffix == ".json" or path.exists()):
        available = sorted(p.stem for p in detectors_dir().glob("*.json"))
        path = detectors_dir() / f"{name_or_path}.json"
        if not path.exists():
            raise ValueError(
                f"unknown detector {str(name_or_path)!r}; known: {', '.join(available)}"
                f"{did_you_mean(str(name_or_path), available)}"
            )
    if not path.exists():
        raise FileNotFoundError(f"detector config {path} does not exist")
    try:
        cfg = DetectorConfig.model_validate(resolve_config(path))
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in e.errors(include_input=False, include_url=False)
        )
        raise ValueError(f"invalid detector config {path}: {problems}") from None
    except ValueError as e:
        raise ValueError(f"invalid detector config {path}: {e}") from None
    return Detector(cfg)


def resolve_config(path: Path, _seen: tuple[str, ...] = ()) -> dict:
    """The JSON object of a detector config with `"extends": NAME` resolved: the shipped config
    NAME (in detectors/) with this file's fields laid over it, so a variant (e.g. another
    position convention) states only what differs and never drifts from its base."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
    if not isinstance(data, dict):
        raise ValueError("a detector config is a JSON object")
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    available = sorted(p.stem for p in detectors_dir().glob("*.json"))
    if not isinstance(base_name, str) or base_name not in available:
        raise ValueError(f"extends unknown detector {base_name!r}; known: {', '.join(available)}")
    if base_name in _seen or len(_seen) > 8:
        raise ValueError(f"detector configs extend each other in a loop: {_seen + (base_name,)}")
    base = resolve_config(detectors_dir() / f"{base_name}.json", _seen + (base_name,))
    return {**base, **data}
