"""The committed bundled DiTs (relbench/bundled/*): intact, loadable by name, and drawing images
the scorer reads. Skipped when none are bundled."""

from __future__ import annotations

import numpy as np
import pytest

from relbench.dit.bundle import BUNDLED_ROOT, list_bundled, verify_bundle

BUNDLED = list_bundled()
pytestmark = pytest.mark.skipif(not BUNDLED, reason="no bundled models in relbench/bundled")


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_is_intact_and_draws_both_objects_for_the_scorer(name):
    from relbench.models import GenerationRequest, load_model
    from relbench.scoring import detect, load_detector, score_image
    from relbench.suites import parse_prompt

    bundle = verify_bundle(BUNDLED_ROOT / name)  # every file's sha256
    assert (BUNDLED_ROOT / name / "README.md").read_text().startswith(f"# {name}")
    assert (BUNDLED_ROOT / name / "ema.safetensors").stat().st_size < 25 * 2**20
    assert bundle["step"] > 0
    model = load_model(name)
    prompt = "red square is to the left of blue circle"
    a, b = model.generate([GenerationRequest(prompt, 0), GenerationRequest(prompt, 1)])
    assert a.shape == (128, 128, 3) and a.dtype == np.uint8 and not np.array_equal(a, b)
    detector = load_detector("default")
    colours = {d.color for img in (a, b) for d in detect(img, detector)}
    assert {"red", "blue"} <= colours
    row = score_image(a, parse_prompt(prompt), detector).to_dict()
    assert isinstance(row["correct"], bool) and row["reason"] is not None
