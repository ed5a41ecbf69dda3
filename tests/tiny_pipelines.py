"""Tiny randomly initialised diffusers pipelines (PixArt-α, PixArt-Σ, Sana, SD3, Flux), built offline from configs
and saved with `save_pretrained`, so `diffusers:<dir>` loads them as it loads a real model.

Tokenizers are made with the `tokenizers` library (a word-level vocabulary of the prompt grammar)
and wrapped in `PreTrainedTokenizerFast`, so no tokenizer file is downloaded. Every pipeline makes
32 × 32 images (`height=32, width=32`) from an 8 × 8 grid of image tokens (Sana: 16 × 16). Build
time: well under a second each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

WORDS = (
    "<pad> </s> <unk> <s> red blue crimson navy circle square triangle is above below the to left "
    "right of and directly higher lower diagonally up down from upper"
)
SIZE = 32
"""Image side in pixels for every tiny pipeline."""


def tokenizer(max_length: int, *, bos: bool = False) -> Any:
    """A fast word-level tokenizer over the grammar's words; `bos` adds a CLIP-style start token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS.split())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    single = "<s> $A </s>" if bos else "$A </s>"
    tok.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[("</s>", 1), ("<s>", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        bos_token="<s>", model_max_length=max_length,
    )


def _vae(latent_channels: int = 4) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 8), layers_per_block=1, latent_channels=latent_channels,
        norm_num_groups=4, sample_size=SIZE, shift_factor=0.0, scaling_factor=1.0,
    )


def _t5(d_model: int) -> Any:
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=len(WORDS.split()), d_model=d_model, d_kv=8,
                                   d_ff=2 * d_model, num_layers=1, num_heads=4))


def _clip(hidden: int, *, projection: bool) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(vocab_size=len(WORDS.split()), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                         projection_dim=hidden, pad_token_id=0, bos_token_id=3, eos_token_id=1)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)


def pixart(path: Path) -> Path:
    """PixArt-α: T5 encoder, PixArtTransformer2DModel (cross-attention), DPM-Solver++."""
    from diffusers import PixArtAlphaPipeline

    return _pixart(path, PixArtAlphaPipeline, max_length=120)


def pixart_sigma(path: Path) -> Path:
    """PixArt-Σ: the PixArt-α transformer and encoder in `PixArtSigmaPipeline`."""
    from diffusers import PixArtSigmaPipeline

    return _pixart(path, PixArtSigmaPipeline, max_length=300)


def _pixart(path: Path, pipeline_cls: Any, max_length: int) -> Path:
    from diffusers import DPMSolverMultistepScheduler, PixArtTransformer2DModel

    torch.manual_seed(0)
    transformer = PixArtTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
        cross_attention_dim=16, caption_channels=16, sample_size=16, patch_size=2,
        norm_type="ada_norm_single", num_embeds_ada_norm=1000,
    )
    pipe = pipeline_cls(tokenizer=tokenizer(max_length), text_encoder=_t5(16), vae=_vae(),
                        transformer=transformer, scheduler=DPMSolverMultistepScheduler())
    pipe.save_pretrained(path)
    return path


def sana(path: Path) -> Path:
    """Sana: Gemma-2 encoder, SanaTransformer2DModel (linear self-attention, cross-attention),
    a deep-compression autoencoder, flow-matching Euler."""
    from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    torch.manual_seed(0)
    vae = AutoencoderDC(
        in_channels=3, latent_channels=4, attention_head_dim=2,
        encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
        encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1), decoder_layers_per_block=[1, 1],
        downsample_block_type="conv", upsample_block_type="interpolate",
        decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=0.41407,
    )
    transformer = SanaTransformer2DModel(
        patch_size=1, in_channels=4, out_channels=4, num_layers=1, num_attention_heads=2,
        attention_head_dim=4, num_cross_attention_heads=2, cross_attention_head_dim=4,
        cross_attention_dim=8, caption_channels=8, sample_size=16,
    )
    encoder = Gemma2Model(Gemma2Config(
        vocab_size=len(WORDS.split()), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=4, max_position_embeddings=512,
        pad_token_id=0,
    ))
    pipe = SanaPipeline(tokenizer=tokenizer(512), text_encoder=encoder, vae=vae, transformer=transformer,
                        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.save_pretrained(path)
    return path


def sd3_transformer(layers: int = 2, heads: int = 2, head_dim: int = 8) -> Any:
    """A random SD3Transformer2DModel: 16 × 16 × 4 latents, patch 2 → 8 × 8 image tokens; text
    states of width 64 (two 32-wide CLIPs side by side, or T5)."""
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(0)
    return SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=4, num_layers=layers, attention_head_dim=head_dim,
        num_attention_heads=heads, joint_attention_dim=64, caption_projection_dim=heads * head_dim,
        pooled_projection_dim=64, out_channels=4, pos_embed_max_size=16,
    )


def sd3(path: Path) -> Path:
    """SD3: two CLIP encoders (77 tokens) + T5 (`max_sequence_length` tokens), joint attention."""
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    torch.manual_seed(0)
    pipe = StableDiffusion3Pipeline(
        transformer=sd3_transformer(), scheduler=FlowMatchEulerDiscreteScheduler(), vae=_vae(),
        text_encoder=_clip(32, projection=True), tokenizer=tokenizer(77, bos=True),
        text_encoder_2=_clip(32, projection=True), tokenizer_2=tokenizer(77, bos=True),
        text_encoder_3=_t5(64), tokenizer_3=tokenizer(256),
    )
    pipe.save_pretrained(path)
    return path


def flux_transformer(layers: int = 1, single_layers: int = 2, heads: int = 2, head_dim: int = 16) -> Any:
    """A random FluxTransformer2DModel: 8 × 8 packed image tokens of 4 × 2 × 2 latent channels,
    T5 states of width 32, rotary positions over (4, 4, 8) dims of each head."""
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    return FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=layers, num_single_layers=single_layers,
        attention_head_dim=head_dim, num_attention_heads=heads, joint_attention_dim=32,
        pooled_projection_dim=32, guidance_embeds=False, axes_dims_rope=(4, 4, 8),
    )


def flux(path: Path) -> Path:
    """Flux: CLIP (pooled only) + T5 text tokens; dual-stream then single-stream blocks."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    torch.manual_seed(0)
    pipe = FluxPipeline(
        transformer=flux_transformer(), scheduler=FlowMatchEulerDiscreteScheduler(), vae=_vae(),
        text_encoder=_clip(32, projection=False), tokenizer=tokenizer(77, bos=True),
        text_encoder_2=_t5(32), tokenizer_2=tokenizer(512),
    )
    pipe.save_pretrained(path)
    return path


BUILDERS = {"pixart": pixart, "pixart-sigma": pixart_sigma, "sana": sana, "sd3": sd3, "flux": flux}
