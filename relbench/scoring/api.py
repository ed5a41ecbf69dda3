"""The scorer interface: what turns an image and the spec it was made for into a verdict.

relbench's own scorer is the classical detector (`default`: colour names, shape fits and the
relation judge, configured by `detectors/*.json`); a neural or any other scorer sits beside
it by implementing `Scorer` and registering a factory under the `relbench.scorers` entry point
(see `relbench.extensions`). `relbench score --scorer NAME` and `relbench eval --scorer NAME`
use it, and the run record names it, its version, config hash and the package it came from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from relbench.scene import did_you_mean

if TYPE_CHECKING:
    import numpy as np

    from relbench.scene import RelationSpec
    from relbench.scoring.judge import ScoreResult

DEFAULT_SCORER = "default"
"""The built-in scorer: the classical detector with a config from `detectors/`."""


@runtime_checkable
class Scorer(Protocol):
    """Scores one RGB image against the spec it was generated for.

    `name`, `version` and `config_hash` go into every run record: bump `version` (a semantic
    version MAJOR.MINOR.PATCH, relbench.versions) or change what `config_hash` covers whenever
    the verdicts could change, as relbench does for its detector configs. `score` must be
    deterministic and must not keep state between images.
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def config_hash(self) -> str: ...

    def describe(self) -> dict[str, Any]:
        """Name, version, config hash and anything else that rebuilds this scorer."""
        ...

    def score(self, image: np.ndarray, spec: RelationSpec) -> ScoreResult:
        """The verdict on an (H, W, 3) uint8 RGB image: every `ScoreResult` field, with a
        readable `reason`. A scorer may also offer `score_batch(images, specs)`, returning for
        each image its `ScoreResult` or the exception it raised (the built-in detector does):
        `relbench score` then hands it a batch of rows' images at a time."""
        ...


def list_scorers() -> list[str]:
    """`default` and the scorers installed packages register (none of them imported)."""
    from relbench import extensions

    installed = extensions.names(extensions.SCORERS)
    return [DEFAULT_SCORER] + [n for n in installed if n != DEFAULT_SCORER]


def load_scorer(name: str | None = None, *, detector: str | None = None) -> Scorer:
    """The scorer called `name` (None: `default`, the classical detector with config `detector`,
    itself `default` when None); a third-party scorer is built by calling its entry point with
    no arguments, and its version read as a semantic version ("3" → 3.0.0; none: a ValueError
    naming the package, relbench.versions). An unknown name gets a "did you mean"; `detector`
    with another scorer is an error (it configures the classical one only)."""
    if name is None or name == DEFAULT_SCORER:
        from relbench.scoring.config import load_detector

        return load_detector(detector or "default")
    from relbench import extensions

    ext = extensions.find(extensions.SCORERS, name)
    if ext is None:
        choices = list_scorers()
        raise ValueError(f"unknown scorer {name!r}{did_you_mean(name, choices)}")
    if detector is not None and detector != "default":
        raise ValueError(f"--detector configures the default scorer; scorer {name!r} takes none")
    ext.provenance()  # a package version with no semantic form is refused before any scoring
    scorer = ext.load()()
    missing = [a for a in ("name", "version", "config_hash", "describe", "score")
               if not hasattr(scorer, a)]
    if missing:
        raise ValueError(f"scorer {name!r} from package {ext.package} is not a relbench Scorer: "
                        f"it has no {', '.join(missing)}")
    from relbench.versions import extension_release

    version = extension_release(str(scorer.version), f"scorer {name!r}", ext.package)
    return scorer if version == scorer.version else _ReleaseVersioned(scorer, version)


class _ReleaseVersioned:
    """A third-party scorer whose version relbench read in its semantic form ("3" → 3.0.0,
    relbench.versions): that form is what run records and score summaries carry."""

    def __init__(self, inner: Any, version: str) -> None:
        self._inner = inner
        self._version = version

    @property
    def version(self) -> str:
        return self._version

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def config_hash(self) -> str:
        return self._inner.config_hash

    def describe(self) -> dict[str, Any]:
        return {**self._inner.describe(), "version": self._version}

    def score(self, image: np.ndarray, spec: RelationSpec) -> ScoreResult:
        return self._inner.score(image, spec)

    def __getattr__(self, attr: str) -> Any:  # anything else the scorer offers (e.g. `config`)
        if attr.startswith("_"):  # never recurse while `_inner` is unset (copy, pickle)
            raise AttributeError(attr)
        return getattr(self._inner, attr)


def scorer_provenance(name: str | None) -> dict[str, str | None] | None:
    """The package and version a scorer name comes from; None for the built-in one."""
    if name is None or name == DEFAULT_SCORER:
        return None
    from relbench import extensions

    return extensions.provenance(extensions.SCORERS, name)


__all__ = ["DEFAULT_SCORER", "Scorer", "list_scorers", "load_scorer", "scorer_provenance"]
