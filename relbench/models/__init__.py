"""Models behind one protocol: baselines (`oracle`, `chance`) and adapters."""

from relbench.models.api import GenerationRequest, NoImage, T2IModel
from relbench.models.registry import list_models, load_model, register_model

__all__ = ["GenerationRequest", "NoImage", "T2IModel", "list_models", "load_model", "register_model"]
