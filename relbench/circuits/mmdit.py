"""Joint-attention DiTs (MMDiTs: diffusers SD3Transformer2DModel, FluxTransformer2DModel): the
attention layers circuit diagnostics read, their stable names, their token roles, and one
attention processor that recomputes their attention explicitly so it can be captured and masked.

In an MMDiT the text does not enter through a cross-attention: image and text tokens are
concatenated and attend to each other in one joint softmax per head. The part that corresponds
to PixArt's cross-attention is the **image-query → text-key block** of those probabilities:
row = an image token, columns = the text tokens, values = probabilities of the joint softmax
(over image *and* text keys, so a row's text block sums to the share of attention the image
token gives the text, not to 1). Layers and names (docs/circuits-mmdit.md has the details):

- SD3 / SD3.5: `transformer_blocks[i].attn` (JointAttnProcessor2_0; sequence [image; text]) →
  `L{i}`. SD3.5's extra image-only self-attention (`attn2`) reads no text and is left alone.
- Flux: dual-stream `transformer_blocks[i].attn` (sequence [text; image], rotary positions) →
  `L{i}`; single-stream `single_transformer_blocks[j].attn` (the same sequence, one set of
  projections) → `S{j}`. Global layer index: L0..L{D-1} are 0..D-1, S{j} is D + j.

Interventions act on the conditional rows only, like the PixArt hooks:
`block_tokens` puts −inf on the chosen roles' text keys for image queries (the softmax then
renormalises over the remaining image and text keys); `block_text` does so for every text key
(the image tokens then attend to the image alone); `zero_head` zeros the head's output for every
query (image and text tokens) before the output projections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
from torch import nn

from relbench.circuits.attention import blocked_keys, zero_heads

Kind = Literal["sd3", "flux_dual", "flux_single"]


@dataclass(frozen=True)
class JointLayer:
    """One joint attention module, its stable name and how its token sequence is laid out."""

    name: str
    module: nn.Module
    kind: Kind

    @property
    def text_first(self) -> bool:
        """Flux puts the text tokens first ([text; image]); SD3 puts them last ([image; text])."""
        return self.kind != "sd3"


def _class_names(obj: Any) -> set[str]:
    return {c.__name__ for c in type(obj).__mro__}


def is_joint(transformer: nn.Module) -> bool:
    """Whether `transformer` is an MMDiT relbench reads (SD3 or Flux family)."""
    return bool(_class_names(transformer) & {"SD3Transformer2DModel", "FluxTransformer2DModel"})


def joint_layers(transformer: nn.Module) -> list[JointLayer]:
    """The joint attention layers of an SD3 or Flux transformer, in execution order."""
    names = _class_names(transformer)
    blocks = list(getattr(transformer, "transformer_blocks", []) or [])
    if "SD3Transformer2DModel" in names:
        return [JointLayer(f"L{i}", b.attn, "sd3") for i, b in enumerate(blocks)]
    if "FluxTransformer2DModel" in names:
        single = list(getattr(transformer, "single_transformer_blocks", []) or [])
        return ([JointLayer(f"L{i}", b.attn, "flux_dual") for i, b in enumerate(blocks)]
                + [JointLayer(f"S{j}", b.attn, "flux_single") for j, b in enumerate(single)])
    raise ValueError(f"{type(transformer).__name__} is not an SD3 or Flux transformer")


def block_types(transformer: nn.Module) -> str:
    """Every list of blocks in `transformer` and the block classes in it, e.g.
    "transformer_blocks: 2 × BasicTransformerBlock (attn1)": for errors on models relbench
    cannot hook."""
    parts = []
    for name, child in transformer.named_children():
        if isinstance(child, nn.ModuleList) and len(child):
            kinds: dict[str, int] = {}
            for block in child:
                attn = [n for n, m in block.named_children() if "attn" in n.lower()]
                key = f"{type(block).__name__}" + (f" ({', '.join(attn)})" if attn else "")
                kinds[key] = kinds.get(key, 0) + 1
            parts.append(f"{name}: " + ", ".join(f"{n} × {k}" for k, n in kinds.items()))
    return "; ".join(parts) or "no lists of blocks"


# ---------------------------------------------------------------- token roles


def joint_role_fn(pipeline: Any) -> Callable[[str], list[str]]:
    """prompt → one role per position of the text sequence the joint attention sees.

    SD3: the CLIP tokens (tokenizer, padded to its `tokenizer_max_length`, 77; both CLIPs read
    the same positions), then the T5 tokens (tokenizer_3, `max_sequence_length`) — or, without
    a T5 encoder, 77 zero states (padding). Flux: the T5 tokens (tokenizer_2,
    `max_sequence_length`); its CLIP enters only as a pooled vector, not as tokens."""
    import inspect

    from relbench.circuits.roles import PAD, hf_roles

    transformer = getattr(pipeline, "transformer", None)
    if transformer is None or not is_joint(transformer):
        raise ValueError(f"{type(pipeline).__name__} has no SD3 or Flux transformer")
    param = inspect.signature(pipeline.__call__).parameters.get("max_sequence_length")
    max_t5 = int(param.default) if param is not None else 256
    if "SD3Transformer2DModel" in _class_names(transformer):
        clip_tok = pipeline.tokenizer
        clip_len = int(getattr(pipeline, "tokenizer_max_length", 77))
        has_t5 = getattr(pipeline, "text_encoder_3", None) is not None
        t5_tok = pipeline.tokenizer_3 if has_t5 else None

        def sd3_roles(text: str) -> list[str]:
            clip = hf_roles(clip_tok, text, clip_len)
            clip = clip + [PAD] * (clip_len - len(clip))
            return clip + ([] if t5_tok is None else hf_roles(t5_tok, text, max_t5))

        return sd3_roles
    t5_tok = pipeline.tokenizer_2
    return lambda text: hf_roles(t5_tok, text, max_t5)


# ---------------------------------------------------------------- the processor


class TextLength:
    """Forward pre-hook on the transformer: the number of text tokens of the current call, which
    Flux's single-stream blocks need to split their [text; image] sequence."""

    def __init__(self) -> None:
        self.value: int | None = None

    def __call__(self, module: nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
        states = kwargs.get("encoder_hidden_states")
        if states is None and len(args) > 1:
            states = args[1]
        self.value = None if states is None else int(states.shape[1])


class JointAttentionProcessor:
    """A diffusers attention processor for one joint attention layer, reporting to the
    `CrossAttentionHooks` that installed it (capture, interventions, conditional rows)."""

    def __init__(self, hooks: Any, layer: int, site: JointLayer, text_length: TextLength) -> None:
        self.hooks, self.layer, self.site, self.text_length = hooks, layer, site, text_length
        self.name = site.name

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if self.site.kind == "sd3":
            q, k, v, n_txt = self._sd3_qkv(attn, hidden_states, encoder_hidden_states)
        else:
            q, k, v, n_txt = self._flux_qkv(attn, hidden_states, encoder_hidden_states,
                                            image_rotary_emb)
        out = self._attend(q, k, v, n_txt, attention_mask)  # (B, S, H·d)
        return self._project(attn, out, hidden_states, encoder_hidden_states)

    # ---- projections, as the stock processors compute them ---------------------------------

    def _sd3_qkv(self, attn: Any, x: torch.Tensor, ctx: torch.Tensor | None) -> tuple:
        """(B, H, S, d) q, k, v over [image; text] (JointAttnProcessor2_0) and the text length."""
        if ctx is None:
            raise RuntimeError(f"{self.name}: SD3 joint attention called without text states")
        bsz, heads = x.shape[0], attn.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(bsz, -1, heads, t.shape[-1] // heads).transpose(1, 2)  # (B, H, S, d)

        q, k, v = split(attn.to_q(x)), split(attn.to_k(x)), split(attn.to_v(x))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        cq, ck = split(attn.add_q_proj(ctx)), split(attn.add_k_proj(ctx))
        cv = split(attn.add_v_proj(ctx))
        if attn.norm_added_q is not None:
            cq = attn.norm_added_q(cq)
        if attn.norm_added_k is not None:
            ck = attn.norm_added_k(ck)
        return (torch.cat([q, cq], 2), torch.cat([k, ck], 2), torch.cat([v, cv], 2), ctx.shape[1])

    def _flux_qkv(self, attn: Any, x: torch.Tensor, ctx: torch.Tensor | None, rope: Any) -> tuple:
        """(B, H, S, d) q, k, v over [text; image] with rotary positions (FluxAttnProcessor)."""
        from diffusers.models.embeddings import apply_rotary_emb
        from diffusers.models.transformers.transformer_flux import _get_qkv_projections

        q, k, v, cq, ck, cv = _get_qkv_projections(attn, x, ctx)
        q, k, v = (t.unflatten(-1, (-1, attn.head_dim)) for t in (q, k, v))  # (B, S, H, d)
        q, k = attn.norm_q(q), attn.norm_k(k)
        if attn.added_kv_proj_dim is not None:
            if ctx is None:
                raise RuntimeError(f"{self.name}: Flux dual-stream attention called without text")
            cq, ck, cv = (t.unflatten(-1, (-1, attn.head_dim)) for t in (cq, ck, cv))
            cq, ck = attn.norm_added_q(cq), attn.norm_added_k(ck)
            q, k, v = torch.cat([cq, q], 1), torch.cat([ck, k], 1), torch.cat([cv, v], 1)
            n_txt = ctx.shape[1]
        else:
            if self.text_length.value is None:
                raise RuntimeError(f"{self.name}: text length unknown (hooks not installed?)")
            n_txt = self.text_length.value
        if rope is not None:
            q = apply_rotary_emb(q, rope, sequence_dim=1)
            k = apply_rotary_emb(k, rope, sequence_dim=1)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), n_txt

    def _project(
        self, attn: Any, out: torch.Tensor, x: torch.Tensor, ctx: torch.Tensor | None
    ) -> Any:
        """The stock processors' output projections and split back into image and text."""
        if self.site.kind == "sd3":
            n_img = x.shape[1]
            img, txt = out[:, :n_img], out[:, n_img:]
            if not attn.context_pre_only:
                txt = attn.to_add_out(txt)
            img = attn.to_out[1](attn.to_out[0](img))
            return img, txt
        if ctx is not None:
            txt, img = out[:, : ctx.shape[1]], out[:, ctx.shape[1]:]
            img = attn.to_out[1](attn.to_out[0](img.contiguous()))
            return img, attn.to_add_out(txt.contiguous())
        return out

    # ---- the attention itself ------------------------------------------------------------

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_txt: int,
                mask: torch.Tensor | None) -> torch.Tensor:
        """softmax(q·kᵀ/√d + mask) · v with capture and interventions; (B, S, H·d)."""
        hooks = self.hooks
        bsz, heads, seq, d = q.shape
        txt = slice(0, n_txt) if self.site.text_first else slice(seq - n_txt, seq)
        img = slice(n_txt, seq) if self.site.text_first else slice(0, seq - n_txt)
        step = hooks.step
        cond = hooks.cond_rows(bsz)
        active = [iv for iv in hooks.interventions if iv.layer == self.layer and iv.active(step)]
        with torch.autocast(q.device.type, enabled=False):  # probabilities in float32
            logits = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(d)  # (B, H, S, S)
            if mask is not None:
                if mask.dtype == torch.bool:
                    logits = logits.masked_fill(~mask, float("-inf"))
                else:
                    logits = logits + mask.float()
            blocked = blocked_keys(hooks, active, bsz, heads, n_txt, cond, logits.device)  # (B, H, Lt)
            if blocked is not None:
                text_logits = logits[:, :, img, txt].masked_fill(
                    blocked[:, :, None, :], float("-inf")
                )
                logits = logits.clone()
                logits[:, :, img, txt] = text_logits
            probs = logits.softmax(-1)  # image rows keep their image keys: never all blocked
        hooks.record(self.layer, probs[cond][:, :, img, txt])  # (Bc, H, N_img, L_txt)
        out = probs.to(v.dtype) @ v  # (B, H, S, d)
        out = zero_heads(out, active, cond)
        return out.transpose(1, 2).reshape(bsz, seq, heads * d).to(q.dtype)


class JointAttention:
    """What `CrossAttentionHooks` needs to hook an MMDiT: its layers, names and processors."""

    def __init__(self, transformer: nn.Module) -> None:
        self.transformer = transformer
        self.layers = joint_layers(transformer)
        self.modules = [site.module for site in self.layers]
        self.names = [site.name for site in self.layers]
        self.heads = int(self.modules[0].heads)
        self.text_length = TextLength()

    def processor(self, hooks: Any, layer: int) -> JointAttentionProcessor:
        return JointAttentionProcessor(hooks, layer, self.layers[layer], self.text_length)

    def install(self) -> Any:
        """Register the text-length pre-hook; returns its removable handle."""
        return self.transformer.register_forward_pre_hook(self.text_length, with_kwargs=True)


SCREEN_REFUSAL = {
    "SD3Transformer2DModel": (
        "weight-space screening is not defined for SD3: its joint attention's queries are "
        "adaLN-modulated (timestep-dependent scale and shift of the normalised residual), and its "
        "text keys come from a context stream every block rewrites, so no fixed position × "
        "relation-word QK map exists; use `circuits synopsis` and `circuits ablate`"
    ),
    "FluxTransformer2DModel": (
        "weight-space screening is not defined for Flux: positions enter through rotary "
        "embeddings inside the attention, not a position table added to the tokens, and the "
        "queries are adaLN-modulated; use `circuits synopsis` and `circuits ablate`"
    ),
}


def screen_refusal(transformer: nn.Module) -> str | None:
    """Why screening cannot read this MMDiT, or None when it is not one."""
    names = _class_names(transformer)
    return next((msg for cls, msg in SCREEN_REFUSAL.items() if cls in names), None)


__all__ = [
    "JointAttention",
    "JointAttentionProcessor",
    "JointLayer",
    "block_types",
    "is_joint",
    "joint_layers",
    "joint_role_fn",
    "screen_refusal",
]
