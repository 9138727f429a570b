"""The output shape shared by R-LIME, LIME and Anchor, so they can be shown and compared side by side."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class Explanation:
    """What every method reports; a method leaves out what it does not produce (no rule, no weights)."""

    method: str  # "rlime", "lime" or "anchor"
    rule: list[str]  # readable predicates of the rectangle; empty = whole space (or none, for LIME)
    features: list[int]  # indices of the rule's features (each fixed to the instance's code)
    weights: dict[str, float]  # linear weights with |weights| summing to 1 (empty for Anchor)
    accuracy: float | None  # R-LIME: surrogate accuracy; Anchor: precision; LIME: None (no scope to measure in)
    coverage: float  # share of the input distribution satisfying the rule (1 for LIME)
    predicted_class: str
    seed: int
    black_box_calls: int  # rows sent to the black box
    black_box_batches: int  # predict_proba invocations
    seconds: float
    instance: dict[str, str]  # the instance's own values, as people read them
    codes: list[int] = field(repr=False, default_factory=list)  # the instance's codes
    # whether the surrogate predicts the black box's class at the instance itself (None: no surrogate, Anchor)
    faithful: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def top_weights(self, k: int = 5) -> dict[str, float]:
        """The ``k`` largest weights by absolute value (the papers' figures show five)."""
        items = sorted(self.weights.items(), key=lambda kv: -abs(kv[1]))
        return dict(items[:k])


def normalise(weights: np.ndarray) -> np.ndarray:
    """Scale to an absolute sum of 1 (all-zero weights stay zero)."""
    total = np.abs(weights).sum()
    return weights / total if total > 0 else weights
