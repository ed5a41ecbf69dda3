"""Detector configs: every threshold of the scorer, loaded from `detectors/*.json`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from relbench.resources import detectors_dir
from relbench.scene import did_you_mean

RGB = tuple[int, int, int]


class DetectorConfig(BaseModel):
    """A versioned scorer configuration (palette and thresholds); see detectors/default.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    description: str = ""
    palette: dict[str, RGB] = Field(description="colour name -> reference RGB")
    background: RGB = Field(description="expected background RGB (the LUT built at load)")
    background_quant: int = Field(ge=1, le=128, description="bg estimate rounding (LUT cache key)")
    lut_bits: int = Field(ge=4, le=7, description="bits per channel of the colour lookup table")
    lut_cache_size: int = Field(ge=1, description="how many backgrounds' LUTs to keep")
    blend_steps: int = Field(ge=2, description="samples on each colour-to-background blend line")
    blend_split: float = Field(gt=0, lt=1, description="blend weight above which a pixel is object")
    max_delta_e: float = Field(gt=0, description="max CIELAB distance to the nearest prototype")
    min_contrast_delta_e: float = Field(ge=0, description="min colour-bg distance")
    work_max_side: int = Field(ge=32, description="larger images are downscaled to this side")
    min_area_frac: float = Field(gt=0, lt=1, description="smaller components are specks")
    min_solidity: float = Field(ge=0, le=1, description="min area / hull area of an object")
    min_fit: float = Field(ge=0, le=1, description="best shape fill below this gives 'unknown'")
    skip_triangle_above: float = Field(
        ge=0, le=1, description="circle/square fill above which the triangle fit is skipped"
    )
    occlusion_margin_px: int = Field(ge=0, description="occluder search distance")

    _hash: str = PrivateAttr(default="")

    @field_validator("palette")
    @classmethod
    def _palette_ok(cls, v: dict[str, RGB]) -> dict[str, RGB]:
        if not v:
            raise ValueError("palette is empty")
        for name, rgb in v.items():
            if any(not 0 <= c <= 255 for c in rgb):
                raise ValueError(f"palette colour {name!r} out of range: {rgb}")
        return v

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
                f"unknown detector {str(name_or_path)!r}"
                f"{did_you_mean(str(name_or_path), available)}"
            )
    if not path.exists():
        raise FileNotFoundError(f"detector config {path} does not exist")
    try:
        cfg = DetectorConfig.model_validate_json(path.read_text())
    except ValueError as e:
        raise ValueError(f"invalid detector config {path}: {e}") from e
    return Detector(cfg)
