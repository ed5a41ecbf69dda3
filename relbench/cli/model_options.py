"""The model options `relbench eval` and `relbench circuits` share: device, dtype, size, and
`--model-arg key=value` for anything else a model's factory takes."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

DTYPES = ("float32", "bfloat16", "float16")


def device_option() -> Any:
    return typer.Option(None, "--device",
                        help="Device for diffusers: models: cpu, cuda, cuda:1, ... (default cpu)")


def dtype_option() -> Any:
    return typer.Option(None, "--dtype", help="float32, bfloat16 or float16 (diffusers: models; "
                                              "bundled DiTs take float32 or bfloat16 = --bf16)")


def size_option(side: str) -> Any:
    return typer.Option(None, f"--{side}", min=8,
                        help=f"Image {side} in pixels for diffusers: models (default: the "
                             "pipeline's own)")


def model_arg_option() -> Any:
    return typer.Option(None, "--model-arg",
                        help="KEY=VALUE passed to the model's factory (repeatable; VALUE read as "
                             "JSON when it parses, else text)")


def force_bf16_option() -> Any:
    return typer.Option(False, "--force-bf16", help="Keep bfloat16 on a CPU without native bf16 "
                                                    "(about 10x slower there than float32)")


def parse_model_args(items: Optional[list[str]]) -> dict[str, Any]:
    """["steps=3", "dtype=bfloat16"] → {"steps": 3, "dtype": "bfloat16"}; a BadParameter naming a
    malformed or repeated item."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise typer.BadParameter(f"--model-arg must be KEY=VALUE with KEY a name, got {item!r}")
        if key in out:
            raise typer.BadParameter(f"--model-arg {key} given twice")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def build_model_args(
    model: str,
    given: dict[str, Any],
    *,
    device: str | None = None,
    dtype: str | None = None,
    height: int | None = None,
    width: int | None = None,
    bf16: bool = False,
    force_bf16: bool = False,
    extra: Optional[list[str]] = None,
) -> dict[str, Any]:
    """The keyword arguments for `load_model(model, ...)`: the options given (None = not given),
    then --model-arg items; an option given twice is refused. For diffusers: models `--bf16` is
    dtype bfloat16; for the bundled DiTs `--dtype bfloat16` is `bf16`, and bf16 on a CPU without
    native bf16 falls back to float32 with a warning unless `force_bf16`."""
    args = {k: v for k, v in given.items() if v is not None}
    if dtype is not None and dtype not in DTYPES:
        from relbench.scene import did_you_mean

        raise typer.BadParameter(f"unknown dtype {dtype!r}{did_you_mean(dtype, DTYPES)}")
    diffusers = model.startswith("diffusers:")
    if diffusers:
        opts = {"device": device, "dtype": dtype, "height": height, "width": width,
                "bf16": bf16 or None, "force_bf16": force_bf16 or None}
    else:
        if dtype == "float16":
            raise typer.BadParameter(f"model {model!r} runs float32 or bfloat16, not float16")
        want_bf16 = bf16 or dtype == "bfloat16"
        if want_bf16:
            from relbench.hardware import fit_dtype

            want_bf16 = fit_dtype("bfloat16", device or "cpu", force=force_bf16) == "bfloat16"
        opts = {"device": device, "height": height, "width": width, "bf16": want_bf16 or None}
    for key, value in [*opts.items(), *parse_model_args(extra).items()]:
        if value is None:
            continue
        if key in args:
            raise typer.BadParameter(f"model option {key} given twice (an option and --model-arg)")
        args[key] = value
    return args
