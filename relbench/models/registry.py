"""Model names → factories. Plain names (`oracle`) and prefixed names (`folder:DIR`)."""

from __future__ import annotations

from typing import Any, Callable

from relbench.models.api import T2IModel
from relbench.scene import did_you_mean

Factory = Callable[..., T2IModel]
_FACTORIES: dict[str, Factory] = {}
_PREFIXES: dict[str, Factory] = {}


def register_model(name: str, *, prefix: bool = False) -> Callable[[Factory], Factory]:
    """Register a factory under `name`; with prefix=True it handles `name:<argument>`."""

    def wrap(factory: Factory) -> Factory:
        (_PREFIXES if prefix else _FACTORIES)[name] = factory
        return factory

    return wrap


def list_models() -> list[str]:
    named = _named()
    from relbench import extensions  # names installed packages register (entry points)

    plugins = [n for n in extensions.names(extensions.MODELS)
               if n not in named and n not in _PREFIXES]
    return sorted(named) + [f"{p}:<arg>" for p in sorted(_PREFIXES)] + plugins


def load_model(name: str, **kwargs: Any) -> T2IModel:
    """Build the model called `name`; an unknown name gets a "did you mean", an argument the
    model does not take (e.g. `steps` for `oracle`) an error naming the ones it does."""
    named = _named()
    if ":" in name:
        prefix, arg = name.split(":", 1)
        if prefix in _PREFIXES:
            factory = _PREFIXES[prefix]
            _check_args(name, factory, kwargs, positional=1)
            return factory(arg, **kwargs)
    if name in named:
        _check_args(name, named[name], kwargs)
        return named[name](**kwargs)
    ext = _extension(name)
    if ext is not None:  # a model an installed package registers: NAME, or NAME:ARG
        factory, args = ext.load(), ([name.split(":", 1)[1]] if ":" in name else [])
        _check_args(name, factory, kwargs, positional=len(args))
        return factory(*args, **kwargs)
    hint = "" if set(named) - set(_FACTORIES) else " (no bundled DiTs are installed in relbench/bundled/)"
    raise ValueError(f"unknown model {name!r}{did_you_mean(name, list_models())}{hint}")


def model_extension(name: str) -> dict[str, str | None] | None:
    """The package and version behind model `name` when an installed package provides it (for
    the run record); None for relbench's own models."""
    ext = _extension(name)
    return None if ext is None else ext.provenance()


def _extension(name: str):
    """The `relbench.models` entry point that serves `name` (as NAME or NAME:ARG), unless one of
    relbench's own models does."""
    prefix = name.split(":", 1)[0]
    if name in _named() or (":" in name and prefix in _PREFIXES):
        return None
    from relbench import extensions

    return extensions.find(extensions.MODELS, prefix)


def _check_args(name: str, factory: Factory, kwargs: dict[str, Any], positional: int = 0) -> None:
    import inspect

    sig = inspect.signature(factory)
    try:
        sig.bind(*([None] * positional), **kwargs)
    except TypeError:
        params = [p for p in list(sig.parameters)[positional:]]
        bad = sorted(k for k in kwargs if k not in sig.parameters)
        hint = "".join(did_you_mean(k, params) for k in bad)
        raise ValueError(
            f"model {name!r} does not take {', '.join(map(repr, bad)) or 'these arguments'} "
            f"(it takes: {', '.join(params) or 'no arguments'}){hint}"
        ) from None


def _named() -> dict[str, Factory]:
    """Registered plain names plus one per bundled DiT directory present now."""
    _load_builtins()
    from relbench.models.dit_adapter import bundled_factories

    return {**_FACTORIES, **bundled_factories()}


def _load_builtins() -> None:
    # Importing registers them; kept lazy so `relbench.models` stays cheap to import (the
    # adapters import torch / diffusers only when one of their models is built).
    from relbench.models import baselines, diffusers_adapter, dit_adapter, folder  # noqa: F401
