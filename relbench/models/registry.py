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
    _load_builtins()
    return sorted(_FACTORIES) + [f"{p}:<arg>" for p in sorted(_PREFIXES)]


def load_model(name: str, **kwargs: Any) -> T2IModel:
    """Build the model called `name`; an unknown name gets a "did you mean"."""
    _load_builtins()
    if ":" in name:
        prefix, arg = name.split(":", 1)
        if prefix in _PREFIXES:
            return _PREFIXES[prefix](arg, **kwargs)
    if name in _FACTORIES:
        return _FACTORIES[name](**kwargs)
    raise ValueError(f"unknown model {name!r}{did_you_mean(name, list_models())}")


def _load_builtins() -> None:
    # Importing registers them; kept lazy so `relbench.models` stays cheap to import.
    from relbench.models import baselines  # noqa: F401
