"""Bundled PixArt-style DiTs: size presets, text encoders, tiny autoencoder, training, sampling.

Needs the `dit` extra (torch, diffusers, transformers, safetensors). Nothing here is imported
by `relbench.scoring` or `relbench.suites`.
"""

from relbench.dit.autoencoder import AutoencoderConfig, TinyAutoencoder, train_autoencoder
from relbench.dit.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from relbench.dit.encoders import RandomTokenEncoder, TextEncoder, load_encoder
from relbench.dit.model import DiT, ModelConfig
from relbench.dit.objectives import OBJECTIVES, NoiseProcess, sampling_scheduler
from relbench.dit.presets import PRESETS, DiTSize, get_preset
from relbench.dit.sample import DiTPipeline, load_pipeline
from relbench.dit.train import Trainer, TrainConfig, evaluate_suite, train

__all__ = [
    "OBJECTIVES",
    "PRESETS",
    "AutoencoderConfig",
    "CheckpointError",
    "DiT",
    "DiTPipeline",
    "DiTSize",
    "ModelConfig",
    "NoiseProcess",
    "RandomTokenEncoder",
    "TextEncoder",
    "TinyAutoencoder",
    "TrainConfig",
    "Trainer",
    "evaluate_suite",
    "get_preset",
    "load_encoder",
    "load_pipeline",
    "read_checkpoint",
    "sampling_scheduler",
    "train",
    "train_autoencoder",
    "write_checkpoint",
]
