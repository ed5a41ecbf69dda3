"""Cross-attention hooks for PixArt-family transformers: capture, head zeroing, token blocking.

One diffusers attention processor (`CrossAttentionProcessor`) replaces the processor of every
cross-attention layer `transformer_blocks[i].attn2` — hook name `L{i}` — while a
`CrossAttentionHooks` context is open, and the original processors come back when it closes,
also after an error. The processor computes the attention probabilities explicitly, per head
(float32 logits, the transformer's own key-padding bias), so it can

- capture them, reduced on the fly to text categories (`roles.TEXT_CATEGORIES`): per batch only
  (samples, layers, heads, steps, image tokens, 6) floats are kept, never a full
  steps × heads × image × text map per sample;
- zero chosen heads' outputs (before the output projection);
- block chosen heads' attention to chosen text tokens (−inf on those keys, softmax renormalises),
  or to every text token (`block_text`);
- restrict any of this to a window of sampling steps: every forward pass of the transformer is
  one step (one model evaluation per step: DPM-Solver++, DDIM, Euler — not Heun).

Classifier-free guidance runs the conditional and unconditional prompts in one batch; captures
and interventions touch only the conditional rows. Which half that is must be known:
`COND_FIRST` for relbench's `DiTPipeline` ([cond; uncond]), `COND_SECOND` for diffusers'
pipelines ([uncond; cond]). A batch of exactly as many rows as prompts (no guidance) is all
conditional.

Joint-attention DiTs (SD3, Flux) are hooked the same way through `relbench.circuits.mmdit`: the
same context manager installs `mmdit.JointAttentionProcessor` on their joint attention layers
(names `L{i}`, Flux single-stream `S{j}`), and captures read the image-query → text-key block.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import nn

from relbench.circuits.roles import TEXT_CATEGORIES, RoleFn, category_matrix, check_roles, role_mask

CondHalf = Literal["first", "second"]
COND_FIRST: CondHalf = "first"
"""relbench's DiTPipeline: `torch.cat([cond, uncond])`."""
COND_SECOND: CondHalf = "second"
"""diffusers pipelines (PixArt-α/Σ): `torch.cat([negative, prompt])`."""

MAX_CAPTURE_GRID = 16
"""Image-token grids wider than this are average-pooled to it before capture (memory bound)."""


class NoCrossAttentionError(ValueError):
    """The model has no cross-attention layers to hook."""


def hook_name(layer: int) -> str:
    """Stable name of layer `layer`'s cross-attention: "L3"."""
    return f"L{layer}"


def cross_attention_layers(transformer: nn.Module) -> list[nn.Module]:
    """`transformer_blocks[i].attn2` for every block, in order; a clear error without them that
    lists the block types found."""
    from relbench.circuits.mmdit import block_types

    blocks = getattr(transformer, "transformer_blocks", None)
    name = type(transformer).__name__
    readable = ("circuit diagnostics read PixArt-family cross-attention (attn2 in every block) or "
                "SD3 / Flux joint attention")
    if blocks is None:
        raise NoCrossAttentionError(
            f"{name} has no transformer_blocks; {readable} (found: {block_types(transformer)})"
        )
    layers = [getattr(b, "attn2", None) for b in blocks]
    missing = [i for i, a in enumerate(layers) if a is None]
    if not layers or missing:
        raise NoCrossAttentionError(
            f"{name} has no cross-attention (attn2) in block(s) {missing or 'any'}: {readable} "
            f"(found: {block_types(transformer)})"
        )
    return layers


def model_shape(transformer: nn.Module) -> tuple[int, int]:
    """(layers, heads) of the cross-attention (of the joint attention for SD3 / Flux)."""
    from relbench.circuits.mmdit import is_joint, joint_layers

    if is_joint(transformer):
        joint = joint_layers(transformer)
        return len(joint), int(joint[0].module.heads)
    layers = cross_attention_layers(transformer)
    return len(layers), int(layers[0].heads)


def layer_names(transformer: nn.Module) -> list[str]:
    """Stable names of the hooked layers in index order: L0, L1, ... (Flux: then S0, S1, ...)."""
    from relbench.circuits.mmdit import is_joint, joint_layers

    if is_joint(transformer):
        return [site.name for site in joint_layers(transformer)]
    return [hook_name(i) for i in range(len(cross_attention_layers(transformer)))]


KINDS = ("zero_head", "block_tokens", "block_text")
"""zero a head's output; block its attention to tokens of some roles; block it from all text."""


@dataclass(frozen=True)
class Intervention:
    """Zero `heads` of `layer`, or block their attention to tokens of `roles`, in the steps
    `start <= step < end` (all steps when `steps` is None)."""

    layer: int
    heads: tuple[int, ...]
    kind: Literal["zero_head", "block_tokens", "block_text"]
    roles: tuple[str, ...] = ()
    steps: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"unknown intervention kind {self.kind!r}; use {', '.join(KINDS)}"
            )
        if self.kind == "block_text" and self.roles:
            raise ValueError("block_text blocks every text token; it takes no roles "
                             f"(got {list(self.roles)})")
        if self.kind == "block_tokens" and not self.roles:
            raise ValueError("block_tokens needs the token roles to block (e.g. relation)")
        if self.kind == "zero_head" and self.roles:
            raise ValueError(f"zero_head takes no roles (got {list(self.roles)}); use block_tokens")
        check_roles(self.roles)
        if self.steps is not None and not 0 <= self.steps[0] < self.steps[1]:
            raise ValueError(
                f"step window {list(self.steps)} must be [start, end) with 0 <= start < end"
            )

    def active(self, step: int) -> bool:
        return self.steps is None or self.steps[0] <= step < self.steps[1]


def check_interventions(interventions: Sequence[Intervention], layers: int, heads: int) -> None:
    """A ValueError naming the first head or layer out of range."""
    for iv in interventions:
        if not 0 <= iv.layer < layers:
            raise ValueError(
                f"layer L{iv.layer} out of range: the model has {layers} cross-attention layers "
                f"(L0..L{layers - 1})"
            )
        for h in iv.heads:
            if not 0 <= h < heads:
                raise ValueError(
                    f"head L{iv.layer}H{h} out of range: the model has {heads} heads per layer "
                    f"(H0..H{heads - 1})"
                )


@dataclass
class _Batch:
    """What the hooks know about the batch being generated."""

    roles: list[list[str]]
    steps: int
    step: int = -1
    capture: torch.Tensor | None = None
    """(B, layers, heads, steps, image cells, 6) text-category mass, or None."""
    block_masks: dict[tuple[str, ...], torch.Tensor] = field(default_factory=dict)
    categories: dict[int, torch.Tensor] = field(default_factory=dict)


class CrossAttentionHooks:
    """Context manager: install `CrossAttentionProcessor` on every `attn2` of `transformer`.

    Call `batch(roles, steps)` before each generation call (one list of token roles per
    conditional prompt, see `relbench.circuits.roles`); read `capture()` after it.
    """

    def __init__(
        self,
        transformer: nn.Module,
        *,
        cond: CondHalf,
        interventions: Sequence[Intervention] = (),
        capture: bool = False,
        capture_steps: tuple[int, int] | None = None,
    ) -> None:
        if cond not in (COND_FIRST, COND_SECOND):
            raise ValueError(f"cond must be {COND_FIRST!r} or {COND_SECOND!r}, got {cond!r}")
        from relbench.circuits.mmdit import JointAttention, is_joint

        self.transformer = transformer
        self._joint = JointAttention(transformer) if is_joint(transformer) else None
        self.modules = self._joint.modules if self._joint else cross_attention_layers(transformer)
        self.layers, self.heads = len(self.modules), int(self.modules[0].heads)
        self._joint_handle: Any = None
        check_interventions(interventions, self.layers, self.heads)
        self.cond = cond
        self.interventions = tuple(interventions)
        self.capture_on, self.capture_steps = capture, capture_steps
        self._saved: list[Any] | None = None
        self._handle: Any = None
        self._batch: _Batch | None = None

    @property
    def names(self) -> list[str]:
        """Hook names of the layers, in order: "L0", "L1", ... (Flux: then "S0", "S1", ...)."""
        return self._joint.names if self._joint else [hook_name(i) for i in range(self.layers)]

    # ---- lifetime --------------------------------------------------------------------------

    def __enter__(self) -> CrossAttentionHooks:
        if self._saved is not None:
            raise RuntimeError("these hooks are already installed")
        self._saved = [m.processor for m in self.modules]
        try:
            for i, m in enumerate(self.modules):
                m.set_processor(self._joint.processor(self, i) if self._joint
                                else CrossAttentionProcessor(self, i))
            self._handle = self.transformer.register_forward_pre_hook(self._next_step)
            if self._joint:
                self._joint_handle = self._joint.install()
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._saved is not None:
            for m, p in zip(self.modules, self._saved):
                m.set_processor(p)
            self._saved = None
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self._joint_handle is not None:
            self._joint_handle.remove()
            self._joint_handle = None
        self._batch = None

    # ---- batches ---------------------------------------------------------------------------

    def batch(self, roles: Sequence[Sequence[str]], steps: int) -> None:
        """Start a generation call over prompts with these token roles and `steps` steps."""
        if self._saved is None:
            raise RuntimeError("hooks are not installed; use `with CrossAttentionHooks(...)`")
        if steps < 1:
            raise ValueError(f"steps must be positive, got {steps}")
        self._batch = _Batch([list(r) for r in roles], steps)

    def capture(self) -> torch.Tensor:
        """(B, layers, heads, steps, image cells, 6): per conditional sample, layer, head and
        step, the attention probability each image cell puts on each text category (a cell is
        one image token, or a pooled block of them for grids wider than MAX_CAPTURE_GRID)."""
        b = self._require_batch()
        if b.capture is None:
            raise RuntimeError("nothing captured: capture=True and one generation call are needed")
        return b.capture

    @property
    def step(self) -> int:
        """Index of the current sampling step (forward passes of the transformer since `batch`)."""
        return self._require_batch().step

    def _require_batch(self) -> _Batch:
        if self._batch is None:
            raise RuntimeError("call hooks.batch(roles, steps) before generating")
        return self._batch

    def _next_step(self, module: nn.Module, args: Any) -> None:
        b = self._require_batch()
        b.step += 1
        if b.step >= b.steps:
            raise RuntimeError(
                f"the transformer ran {b.step + 1} forward passes for {b.steps} sampling steps; "
                "circuit hooks assume one model evaluation per step (e.g. DPM-Solver++, not Heun)"
            )

    # ---- used by the processor -------------------------------------------------------------

    def cond_rows(self, rows: int) -> slice:
        """The conditional rows of a batch of `rows`."""
        n = len(self._require_batch().roles)
        if rows == n:
            return slice(0, n)
        if rows == 2 * n:
            return slice(0, n) if self.cond == COND_FIRST else slice(n, 2 * n)
        raise RuntimeError(
            f"cross-attention saw {rows} rows for {n} prompts; expected {n} (no guidance) or "
            f"{2 * n} (classifier-free guidance)"
        )

    def text_categories(self, length: int, device: torch.device) -> torch.Tensor:
        """(B, length, 6) one-hot text categories of the conditional prompts (cached)."""
        b = self._require_batch()
        if length not in b.categories:
            mats = np.stack([category_matrix(r, length) for r in b.roles])
            b.categories[length] = torch.from_numpy(mats).to(device)
        return b.categories[length]

    def block_mask(self, roles: tuple[str, ...], length: int, device: torch.device) -> torch.Tensor:
        """(B, length) bool: conditional prompts' tokens whose role is in `roles` (cached)."""
        b = self._require_batch()
        key = (*roles, f"#{length}")
        if key not in b.block_masks:
            mask = np.stack([role_mask(r, roles, length) for r in b.roles])
            b.block_masks[key] = torch.from_numpy(mask).to(device)
        return b.block_masks[key]

    def record(self, layer: int, probs: torch.Tensor) -> None:
        """Store the conditional rows' probabilities (B, heads, N, L), reduced to categories."""
        b = self._require_batch()
        if not self.capture_on:
            return
        window = self.capture_steps
        if window is not None and not window[0] <= b.step < window[1]:
            return
        bsz, heads, _, length = probs.shape
        cats = self.text_categories(length, probs.device)  # (B, L, 6)
        mass = torch.einsum("bhnl,blc->bhnc", probs, cats)  # (B, H, N, 6)
        mass = _pool_cells(mass)  # (B, H, N', 6)
        if b.capture is None:
            b.capture = torch.zeros(
                (bsz, self.layers, heads, b.steps, mass.shape[2], len(TEXT_CATEGORIES)),
                dtype=torch.float32,
            )
        b.capture[:, layer, :, b.step] = mass.float().cpu()


def _pool_cells(mass: torch.Tensor) -> torch.Tensor:
    """(B, H, N, C) over a square grid of N tokens → average-pooled to at most MAX_CAPTURE_GRID
    cells per side."""
    bsz, heads, n, c = mass.shape
    side = int(round(n**0.5))
    if side * side != n:
        raise RuntimeError(f"{n} image tokens do not form a square grid")
    if side <= MAX_CAPTURE_GRID:
        return mass
    factor = -(-side // MAX_CAPTURE_GRID)
    if side % factor:
        raise RuntimeError(f"cannot pool a {side}×{side} token grid by {factor}")
    grid = mass.permute(0, 1, 3, 2).reshape(bsz * heads, c, side, side)
    pooled = torch.nn.functional.avg_pool2d(grid, factor)  # (B*H, C, side/f, side/f)
    return pooled.reshape(bsz, heads, c, -1).permute(0, 1, 3, 2)


class CrossAttentionProcessor:
    """A diffusers attention processor for one `attn2`, reporting to its `CrossAttentionHooks`."""

    def __init__(self, hooks: CrossAttentionHooks, layer: int) -> None:
        self.hooks, self.layer = hooks, layer
        self.name = hook_name(layer)

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        if encoder_hidden_states is None or hidden_states.ndim != 3:
            raise RuntimeError(f"{self.name} is not a token cross-attention layer")
        if attn.spatial_norm is not None or attn.group_norm is not None:
            raise RuntimeError(f"{self.name}: spatial/group norm attention is not supported")
        hooks = self.hooks
        residual = hidden_states
        bsz, n, _ = hidden_states.shape  # (B, N, D) image tokens
        length = encoder_hidden_states.shape[1]  # L text tokens
        heads = attn.heads
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, length, bsz)
            attention_mask = attention_mask.view(bsz, heads, -1, length)  # (B, H, 1 or N, L)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        q = attn.to_q(hidden_states)
        k = attn.to_k(encoder_hidden_states)
        v = attn.to_v(encoder_hidden_states)
        d = k.shape[-1] // heads
        q = q.view(bsz, n, heads, d).transpose(1, 2)  # (B, H, N, d)
        k = k.view(bsz, length, heads, d).transpose(1, 2)  # (B, H, L, d)
        v = v.view(bsz, length, heads, d).transpose(1, 2)  # (B, H, L, d)
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)

        step = hooks.step
        cond = hooks.cond_rows(bsz)
        active = [iv for iv in hooks.interventions if iv.layer == self.layer and iv.active(step)]
        with torch.autocast(q.device.type, enabled=False):  # probabilities in float32
            logits = (q.float() @ k.float().transpose(-1, -2)) * attn.scale  # (B, H, N, L)
            if attention_mask is not None:
                logits = logits + attention_mask.float()
            blocked = blocked_keys(self.hooks, active, bsz, heads, length, cond, logits.device)
            if blocked is not None:
                logits = logits.masked_fill(blocked[:, :, None, :], float("-inf"))
            probs = logits.softmax(-1)
            if blocked is not None:
                probs = probs.nan_to_num(0.0)  # a query with every key blocked reads nothing
        hooks.record(self.layer, probs[cond])
        out = probs.to(v.dtype) @ v  # (B, H, N, d)
        out = zero_heads(out, active, cond)
        out = out.transpose(1, 2).reshape(bsz, n, heads * d)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


# ---------------------------------------------------------------- models that can be hooked


@dataclass
class HookedModel:
    """A generator (the `T2IModel` protocol) plus what hooks need to know about it."""

    name: str
    model: Any
    """A relbench T2IModel: `generate(requests)` and `describe()`."""
    transformer: nn.Module
    cond: CondHalf
    roles: RoleFn
    steps: int

    @property
    def shape(self) -> tuple[int, int]:
        """(layers, heads) of the cross-attention."""
        return model_shape(self.transformer)

    @property
    def layer_names(self) -> list[str]:
        """Stable layer names in index order (`layer_names(transformer)`)."""
        return layer_names(self.transformer)

    def describe(self) -> dict[str, Any]:
        return self.model.describe()

    def hooks(self, **kwargs: Any) -> CrossAttentionHooks:
        """`CrossAttentionHooks` on this model's transformer, conditional half set."""
        return CrossAttentionHooks(self.transformer, cond=self.cond, **kwargs)

    def generate(
        self, prompts: Sequence[str], seeds: Sequence[int], hooks: CrossAttentionHooks | None
    ) -> list:
        """One image (or NoImage) per (prompt, seed); with `hooks`, their batch is set first.
        The prompts run as one batch of the sampler (the hooks count one batch's steps)."""
        from relbench.models.api import GenerationRequest

        if getattr(self.model, "batch_size", len(prompts)) < len(prompts):
            self.model.batch_size = len(prompts)
        if hooks is not None:
            hooks.batch([self.roles(p) for p in prompts], self.steps)
        return list(self.model.generate([GenerationRequest(p, s) for p, s in zip(prompts, seeds)]))


def open_model(
    model: Any, *, steps: int | None = None, guidance: float | None = None
) -> HookedModel:
    """A `HookedModel` from a model name (`rtep-micro`, `dit:DIR`, `diffusers:PATH`), a relbench
    DiT or diffusers model object, a `DiTPipeline` or a diffusers pipeline. `steps` and
    `guidance` override the model's sampling options (the object passed is not changed)."""
    from relbench.models.diffusers_adapter import DiffusersModel
    from relbench.models.dit_adapter import DiTModel

    if isinstance(model, str):
        from relbench.models import load_model

        model = load_model(model)
    model = _wrap(model)
    if not isinstance(model, (DiTModel, DiffusersModel)):
        raise ValueError(
            f"model {getattr(model, 'name', model)!r} has no transformer to hook; circuit "
            "diagnostics need a bundled DiT, dit:DIR or diffusers:PATH"
        )
    model = copy.copy(model)  # the sampling options set below stay on this copy
    if steps is not None:
        if steps < 1:
            raise ValueError(f"steps must be positive, got {steps}")
        model.steps = steps
    if guidance is not None:
        model.guidance = guidance
    from relbench.circuits.roles import diffusers_role_fn, encoder_role_fn

    if isinstance(model, DiTModel):
        pipe = model.pipe
        return HookedModel(model.name, model, pipe.model.transformer, COND_FIRST,
                           encoder_role_fn(pipe.encoder), model.steps)
    transformer = getattr(model.pipe, "transformer", None)
    if transformer is None:
        raise NoCrossAttentionError(
            f"{model.name}: {type(model.pipe).__name__} has no transformer (a UNet pipeline?); "
            "circuit diagnostics need a PixArt-family DiT or an SD3 / Flux MMDiT"
        )
    from relbench.circuits.mmdit import is_joint, joint_role_fn

    if is_joint(transformer):
        # SD3 batches [uncond; cond] like PixArt; Flux runs no classifier-free batch (all rows cond)
        return HookedModel(model.name, model, transformer, COND_SECOND, joint_role_fn(model.pipe),
                           model.steps)
    model_shape(transformer)  # refuses, naming the block types, what it cannot read
    return HookedModel(model.name, model, transformer, COND_SECOND, diffusers_role_fn(model.pipe),
                       model.steps)


def _wrap(obj: Any) -> Any:
    """Pipelines → the relbench model adapters around them; adapters as they are."""
    from relbench.models.diffusers_adapter import DiffusersModel
    from relbench.models.dit_adapter import DiTModel

    if isinstance(obj, (DiTModel, DiffusersModel)):
        return obj
    from relbench.dit.sample import DiTPipeline

    if isinstance(obj, DiTPipeline):
        return _dit_model(obj)
    if hasattr(obj, "transformer") and callable(obj):  # a diffusers DiffusionPipeline
        from relbench.dit.sample import DEFAULT_GUIDANCE, DEFAULT_STEPS

        device = str(getattr(obj, "device", "cpu"))
        return DiffusersModel(type(obj).__name__, obj, steps=DEFAULT_STEPS,
                              guidance=DEFAULT_GUIDANCE, device=device)
    return obj


def _dit_model(pipe: Any) -> Any:
    from relbench.models.dit_adapter import DiTModel

    bf16 = getattr(pipe, "bf16", False)
    model = DiTModel("DiTPipeline", pipe)
    pipe.bf16 = bf16  # DiTModel sets the pipeline's bf16 flag; keep the caller's
    return model



def blocked_keys(hooks: Any, active: list[Intervention], bsz: int, heads: int, length: int,
                 cond: slice, device: torch.device) -> torch.Tensor | None:
    """(B, H, L) bool: the text keys each head's queries may not read under the active
    `block_tokens` / `block_text` interventions (conditional rows only), or None."""
    blocks = [iv for iv in active if iv.kind in ("block_tokens", "block_text")]
    if not blocks:
        return None
    out = torch.zeros(bsz, heads, length, dtype=torch.bool, device=device)
    for iv in blocks:
        if iv.kind == "block_text":
            mask = torch.ones(length, dtype=torch.bool, device=device)
        else:
            mask = hooks.block_mask(iv.roles, length, device)  # (Bc, L)
        for h in iv.heads:
            out[cond, h] |= mask
    return out


def zero_heads(out: torch.Tensor, active: list[Intervention], cond: slice) -> torch.Tensor:
    """(B, H, N, d) per-head outputs with the active `zero_head` heads zeroed on the
    conditional rows."""
    zeroed = [h for iv in active if iv.kind == "zero_head" for h in iv.heads]
    if not zeroed:
        return out
    keep = torch.ones(out.shape[0], out.shape[1], 1, 1, dtype=out.dtype, device=out.device)
    keep[cond, zeroed] = 0
    return out * keep

__all__ = [
    "COND_FIRST",
    "COND_SECOND",
    "MAX_CAPTURE_GRID",
    "CrossAttentionHooks",
    "CrossAttentionProcessor",
    "HookedModel",
    "Intervention",
    "NoCrossAttentionError",
    "check_interventions",
    "cross_attention_layers",
    "hook_name",
    "layer_names",
    "model_shape",
    "open_model",
]
