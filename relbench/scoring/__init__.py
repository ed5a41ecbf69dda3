"""Classical scorer: colour segmentation + shape fits + relation judge (numpy/OpenCV, no torch)."""

from relbench.scoring.config import DetectorConfig, load_detector
from relbench.scoring.detect import Detection, Detector, detect, label_pixels
from relbench.scoring.files import ImageReadError, decode_image, read_image, score_file
from relbench.scoring.judge import ScoreResult, judge, score_batch, score_image, score_images
from relbench.scoring.layout import colour_layout_correct
from relbench.scoring.metrics import METRIC_FIELDS, summarize
from relbench.scoring.folder import score_folder, score_row, score_rows
from relbench.scoring.api import DEFAULT_SCORER, Scorer, list_scorers, load_scorer

__all__ = [
    "DEFAULT_SCORER",
    "METRIC_FIELDS",
    "Detection",
    "Detector",
    "DetectorConfig",
    "ImageReadError",
    "ScoreResult",
    "Scorer",
    "colour_layout_correct",
    "decode_image",
    "detect",
    "judge",
    "label_pixels",
    "list_scorers",
    "load_detector",
    "load_scorer",
    "read_image",
    "score_file",
    "score_folder",
    "score_row",
    "score_rows",
    "score_batch",
    "score_image",
    "score_images",
    "summarize",
]
