"""The bundled DiT: diffusers' PixArtTransformer2DModel (adaLN-single; self-attn → cross-attn →
MLP) over an 8×8 grid of image tokens, either on pixels or on tiny-autoencoder latents."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn

from relbench.dit.presets import get_preset


class ModelConfig(BaseModel):
    """Everything that fixes the network's shape (stored in every checkpoint)."""

    model_config = ConfigDict(extra="forbid")

    preset: str = "micro"
    head_dim: int = 64
    encoder: str = "rtep"
    encoder_dim: int = 384
    """Width of the rte/rtep vectors; pretrained encoders fix their own and ignore this."""
    encoder_seed: int = 0
    max_length: int = 20
    space: Literal["pixel", "latent"] = "pixel"
    image_size: int = 32
    """Resolution the training images are rendered at (pixels)."""
    patch_size: int = 4
    latent_channels: int = 4
    latent_downsample: int = 4
    """Autoencoder stride: a 32 px image gives a latent_channels × 8 × 8 latent."""

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        get_preset(self.preset, self.head_dim)
        side = self.input_size
        if side % self.patch_size:
            raise ValueError(
                f"input side {side} ({self.space}) is not divisible by patch_size {self.patch_size}"
            )
        return self

    @property
    def in_channels(self) -> int:
        return 3 if self.space == "pixel" else self.latent_channels

    @property
    def input_size(self) -> int:
        """Spatial side of what the transformer sees (pixels or latent cells)."""
        if self.space == "pixel":
            return self.image_size
        if self.image_size % self.latent_downsample:
            raise ValueError(
                f"image_size {self.image_size} is not divisible by latent_downsample "
                f"{self.latent_downsample}"
            )
        return self.image_size // self.latent_downsample

    @property
    def grid(self) -> int:
        """Image tokens per side (8 in the paper)."""
        return self.input_size // self.patch_size


class DiT(nn.Module):
    """x_t, timestep, text states and mask → the objective's prediction, same shape as x_t."""

    def __init__(self, config: ModelConfig, caption_dim: int) -> None:
        super().__init__()
        from diffusers import PixArtTransformer2DModel

        size = get_preset(config.preset, config.head_dim)
        self.config = config
        self.caption_dim = caption_dim
        self.transformer = PixArtTransformer2DModel(
            num_attention_heads=size.heads,
            attention_head_dim=size.head_dim,
            in_channels=config.in_channels,
            out_channels=config.in_channels,
            num_layers=size.depth,
            cross_attention_dim=size.hidden,
            sample_size=config.input_size,
            patch_size=config.patch_size,
            num_embeds_ada_norm=1000,
            norm_type="ada_norm_single",
            interpolation_scale=1,
            # No resolution / aspect-ratio embeddings: every image has the same size.
            use_additional_conditions=False,
            caption_channels=caption_dim,
        )
        # DiT's zero-initialised output layer: the untrained model predicts 0, a stable start.
        nn.init.zeros_(self.transformer.proj_out.weight)
        nn.init.zeros_(self.transformer.proj_out.bias)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, states: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """x (B, C, S, S), t (B,) in [0, 1000), states (B, L, D), mask (B, L) bool → (B, C, S, S)."""
        out = self.transformer(
            x,
            encoder_hidden_states=states.to(x.dtype),
            encoder_attention_mask=mask.to(x.dtype),  # (B, L) → additive bias inside diffusers
            timestep=t,
            added_cond_kwargs={"resolution": None, "aspect_ratio": None},
            return_dict=False,
        )[0]
        return out
