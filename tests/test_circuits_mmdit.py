"""Circuit hooks on joint-attention DiTs (SD3, Flux): tiny random transformers built from configs."""

from __future__ import annotations

import math

import pytest
import torch

from relbench.circuits.attention import (
    COND_SECOND,
    CrossAttentionHooks,
    Intervention,
    NoCrossAttentionError,
    open_model,
)
import tiny_pipelines as tp

N_TXT = 10
ROLES = ["color1", "shape1", "filler", "relation", "color2", "shape2", "special", "pad", "pad", "pad"]


def _inputs(kind: str) -> dict:
    """One forward pass's inputs for the tiny transformer of `kind` (batch 2, 10 text tokens)."""
    g = torch.Generator().manual_seed(0)
    if kind == "sd3":
        return dict(hidden_states=torch.randn(2, 4, 16, 16, generator=g),
                    encoder_hidden_states=torch.randn(2, N_TXT, 64, generator=g),
                    pooled_projections=torch.randn(2, 64, generator=g), timestep=torch.tensor([500.0] * 2))
    img_ids = torch.zeros(64, 3)
    img_ids[:, 1] = torch.arange(8).repeat_interleave(8)
    img_ids[:, 2] = torch.arange(8).repeat(8)
    return dict(hidden_states=torch.randn(2, 64, 16, generator=g),
                encoder_hidden_states=torch.randn(2, N_TXT, 32, generator=g),
                pooled_projections=torch.randn(2, 32, generator=g), timestep=torch.tensor([0.5] * 2),
                img_ids=img_ids, txt_ids=torch.zeros(N_TXT, 3))


@pytest.fixture(scope="module", params=["sd3", "flux"])
def model(request):
    build = tp.sd3_transformer if request.param == "sd3" else tp.flux_transformer
    return request.param, build().eval()


def _run(transformer, x, **hook_kwargs):
    """(output, raw image→text probabilities per layer, hook names) with the hooks installed."""
    raw: dict[int, torch.Tensor] = {}
    with torch.no_grad(), CrossAttentionHooks(transformer, cond=COND_SECOND, **hook_kwargs) as hooks:
        hooks.batch([ROLES, ROLES], 1)
        hooks.record = lambda layer, probs: raw.__setitem__(layer, probs.clone())  # keep them whole
        out = transformer(**x).sample
        names = hooks.names
    return out, raw, names


def _attn_inputs(transformer, x, module):
    """The arguments the attention `module` is called with in a plain forward pass."""
    seen = {}

    def grab(mod, args, kwargs):
        seen.update(kwargs)
        if args:
            seen["hidden_states"] = args[0]

    handle = module.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            transformer(**x)
    finally:
        handle.remove()
    return seen


def _explicit_qkv(kind, site, seen):
    """Image and text q, k, v (B, H, S, d) of one joint attention call, from its weights."""
    from diffusers.models.embeddings import apply_rotary_emb

    attn, x, ctx = site.module, seen["hidden_states"], seen.get("encoder_hidden_states")
    heads = attn.heads

    def split(t):  # (B, S, H·d) → (B, S, H, d)
        return t.view(t.shape[0], t.shape[1], heads, -1)

    q, k, v = split(attn.to_q(x)), split(attn.to_k(x)), split(attn.to_v(x))
    def norm(fn, t):  # SD3 without qk_norm has none
        return t if fn is None else fn(t)

    q, k = norm(attn.norm_q, q), norm(attn.norm_k, k)
    if ctx is not None:
        cq, ck, cv = split(attn.add_q_proj(ctx)), split(attn.add_k_proj(ctx)), split(attn.add_v_proj(ctx))
        cq, ck = norm(attn.norm_added_q, cq), norm(attn.norm_added_k, ck)
        if kind == "sd3":
            q, k, v = torch.cat([q, cq], 1), torch.cat([k, ck], 1), torch.cat([v, cv], 1)
        else:
            q, k, v = torch.cat([cq, q], 1), torch.cat([ck, k], 1), torch.cat([cv, v], 1)
    rope = seen.get("image_rotary_emb")
    if rope is not None:
        q, k = apply_rotary_emb(q, rope, sequence_dim=1), apply_rotary_emb(k, rope, sequence_dim=1)
    seq = q.shape[1]
    txt = slice(0, N_TXT) if site.text_first else slice(seq - N_TXT, seq)
    img = slice(N_TXT, seq) if site.text_first else slice(0, seq - N_TXT)
    return [t.transpose(1, 2) for t in (q, k, v)], img, txt


def test_hooks_without_interventions_leave_the_output_unchanged(model):
    kind, transformer = model
    x = _inputs(kind)
    with torch.no_grad():
        stock = transformer(**x).sample
    out, raw, names = _run(transformer, x, capture=True)
    assert (out - stock).abs().max().item() < 1e-5
    assert names == (["L0", "L1"] if kind == "sd3" else ["L0", "S0", "S1"])
    assert sorted(raw) == list(range(len(names)))
    assert all(p.shape == (2, 2, 64, N_TXT) for p in raw.values())  # (B, H, image, text)
    with torch.no_grad():  # the stock processors are back
        assert torch.equal(transformer(**x).sample, stock)


def test_captured_probabilities_equal_an_explicit_softmax(model):
    from relbench.circuits.mmdit import joint_layers

    kind, transformer = model
    x = _inputs(kind)
    _, raw, _ = _run(transformer, x, capture=True)
    for layer, site in enumerate(joint_layers(transformer)):
        seen = _attn_inputs(transformer, x, site.module)
        with torch.no_grad():
            (q, k, _), img, txt = _explicit_qkv(kind, site, seen)
            probs = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)
        torch.testing.assert_close(raw[layer], probs[:, :, img, txt], atol=1e-6, rtol=1e-5)


def test_blocking_all_text_equals_removing_the_text_from_that_attention(model):
    from relbench.circuits.mmdit import joint_layers

    kind, transformer = model
    x = _inputs(kind)
    site = joint_layers(transformer)[-1]
    layer = len(joint_layers(transformer)) - 1
    seen = _attn_inputs(transformer, x, site.module)
    got = {}
    handle = site.module.register_forward_hook(lambda m, a, out: got.__setitem__("out", out))
    try:
        _run(transformer, x, interventions=[Intervention(layer, (0, 1), "block_text")])
    finally:
        handle.remove()
    with torch.no_grad():
        (q, k, v), img, _ = _explicit_qkv(kind, site, seen)
        qi, ki, vi = q[:, :, img], k[:, :, img], v[:, :, img]  # the image tokens alone
        alone = (qi @ ki.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1) @ vi
        alone = alone.transpose(1, 2).flatten(2)  # (B, N_img, H·d)
    out = got["out"]
    if isinstance(out, tuple):  # dual stream: (image, text) after the output projections
        with torch.no_grad():
            expected = site.module.to_out[1](site.module.to_out[0](alone))
        torch.testing.assert_close(out[0], expected, atol=1e-5, rtol=1e-4)
    else:  # Flux single stream: the [text; image] attention output, no projection
        torch.testing.assert_close(out[:, img], alone, atol=1e-5, rtol=1e-4)


def test_zeroing_a_head_and_blocking_tokens_change_only_what_they_name(model):
    kind, transformer = model
    x = _inputs(kind)
    base, _, _ = _run(transformer, x)
    zeroed, _, _ = _run(transformer, x, interventions=[Intervention(0, (1,), "zero_head")])
    blocked, raw, _ = _run(transformer, x, capture=True,
                           interventions=[Intervention(0, (0,), "block_tokens", ("relation",))])
    assert (zeroed - base).abs().max() > 1e-4 and (blocked - base).abs().max() > 1e-4
    rel = ROLES.index("relation")
    assert raw[0][:, 0, :, rel].abs().max() == 0  # head 0 reads no relation token
    assert raw[0][:, 1, :, rel].min() > 0  # head 1 still does


def test_an_architecture_without_readable_attention_is_refused_with_its_block_types():
    from diffusers import DiTTransformer2DModel

    dit = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                num_layers=1, sample_size=8, patch_size=2, num_embeds_ada_norm=10)
    with pytest.raises(NoCrossAttentionError, match=r"found: transformer_blocks: 1 × BasicTransformerBlock"):
        CrossAttentionHooks(dit, cond=COND_SECOND)


# ---- whole pipelines: roles, synopsis, ablate, card ---------------------------------------


@pytest.fixture(scope="module")
def flux_dir(tmp_path_factory):
    return tp.flux(tmp_path_factory.mktemp("flux"))


def test_joint_roles_follow_each_architectures_text_sequence(tmp_path, flux_dir):
    from relbench.models import load_model

    prompt = "red square is above blue circle"
    flux = open_model(load_model(f"diffusers:{flux_dir}", steps=1, height=32, width=32))
    assert flux.roles(prompt)[:7] == ["color1", "shape1", "filler", "relation", "color2", "shape2",
                                      "special"]  # T5 tokens, then </s>
    assert flux.layer_names == ["L0", "S0", "S1"]
    sd3 = open_model(load_model(f"diffusers:{tp.sd3(tmp_path / 'sd3')}", steps=1))
    roles = sd3.roles(prompt)
    assert roles[:8] == ["special", "color1", "shape1", "filler", "relation", "color2", "shape2",
                         "special"]  # CLIP: <s> ... </s>
    assert roles[8:77] == ["pad"] * 69 and roles[77] == "color1"  # then the T5 tokens


class _OracleBehind:
    """Runs the tiny pipeline (so its attention is captured) but returns the oracle image of each
    prompt, so the scorer finds both objects."""

    def __init__(self, inner):
        self.inner, self.name = inner, "oracle-behind-flux"
        self.steps, self.guidance = inner.steps, inner.guidance

    def generate(self, requests):
        from relbench.baselines import oracle_image
        from relbench.suites import parse_prompt

        self.inner.generate(requests)
        return [oracle_image(parse_prompt(r.prompt), r.seed, 128) for r in requests]

    def describe(self):
        return {"name": self.name}


@pytest.mark.slow
def test_synopsis_ablate_and_card_run_on_flux(flux_dir, tmp_path):
    from relbench.circuits.ablate import ablate
    from relbench.circuits.attention import HookedModel
    from relbench.circuits.card import build_card
    from relbench.circuits.mmdit import joint_role_fn
    from relbench.circuits.synopsis import synopsis
    from relbench.models import load_model

    inner = load_model(f"diffusers:{flux_dir}", steps=1, height=32, width=32)
    hm = HookedModel("flux", _OracleBehind(inner), inner.pipe.transformer, COND_SECOND,
                     joint_role_fn(inner.pipe), 1)
    syn = synopsis(hm, "core", n_prompts=2, seeds=(0,), steps=1, out=tmp_path / "syn")
    assert syn.info["n_bound"] == 2 and syn.info["layer_names"] == ["L0", "S0", "S1"]
    assert {r["name"] for r in syn.info["relation_heads"]} >= {"S1H0", "L0H1"}
    abl = ablate(hm, ["S1H0", "L0"], n_prompts=2, seeds=(0,), steps=1, random_control=1, draws=2,
                 out=tmp_path / "abl")
    assert [a["heads"] for a in abl["ablations"][:2]] == [["S1H0"], ["L0H0", "L0H1"]]
    card = build_card("flux", tmp_path / "syn", None, tmp_path / "abl", tmp_path / "card")
    assert card["relation_head"]["screen"] is None
    assert card["relation_head"]["name"] == syn.info["relation_heads"][0]["name"]
    assert "Screening of" in (tmp_path / "card" / "card.md").read_text()


def test_ablation_targets_use_the_flux_layer_names():
    from relbench.circuits.ablate import parse_target

    names = ["L0", "S0", "S1"]
    assert parse_target("S1H0+L0", 3, 2, names) == ((2, 0), (0, 0), (0, 1))
    with pytest.raises(ValueError, match=r"no layer L1 in this model \(its layers: L0, S0..S1\)"):
        parse_target("L1H0", 3, 2, names)
    with pytest.raises(ValueError, match="no layer S0"):
        parse_target("S0", 3, 2, ["L0", "L1", "L2"])
    assert parse_target("L2H1", 3, 2, ["L0", "L1", "L2"]) == ((2, 1),)
