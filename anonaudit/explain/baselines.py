"""LIME (``lime``) and Anchor (``anchor-exp``) through their libraries, on R-LIME's footing.

Both see the same discretised codes, the same black box (the instance's predicted class against
the rest) and seeds drawn from the caller's generator, and return an :class:`Explanation` like
R-LIME's. LIME treats ordered codes as numbers and nominal ones as categories (as the R-LIME
reference compares it); its perturbations are rounded and clipped to valid codes before they
reach the black box. Its local model stays available as a classifier (:meth:`LimeExplanation.predict`)
so its accuracy can be measured inside R-LIME's rectangles. Anchor gets every feature as a
category, so its predicates are "feature has the instance's code", exactly R-LIME's predicates.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from anonaudit.explain.blackbox import BlackBox
from anonaudit.explain.explanation import Explanation, normalise
from anonaudit.explain.tabular import Discretiser


@dataclass
class LimeExplanation(Explanation):
    """LIME's weights plus its local model: score = intercept + coef · (u(z) − mean) / scale."""

    coef: list[float] = field(repr=False, default_factory=list)
    intercept: float = field(repr=False, default=0.0)
    mean: list[float] = field(repr=False, default_factory=list)
    scale: list[float] = field(repr=False, default_factory=list)
    nominal: list[bool] = field(repr=False, default_factory=list)
    score: float = float("nan")  # R² of LIME's weighted ridge fit

    def predict(self, codes: np.ndarray) -> np.ndarray:
        """True where LIME's local model puts the explained class's probability above ½."""
        u = codes.astype(float)
        nominal = np.asarray(self.nominal, dtype=bool)
        u[:, nominal] = codes[:, nominal] == np.asarray(self.codes)[nominal]
        return self.intercept + ((u - self.mean) / self.scale) @ np.asarray(self.coef) > 0.5


@contextmanager
def _numpy_global_seed(rng: np.random.Generator) -> Iterator[None]:
    """Anchor draws from numpy's global generator: seed it from ours, restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(int(rng.integers(2**32)))
    try:
        yield
    finally:
        np.random.set_state(state)


def _valid_codes(z: np.ndarray, n_values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(z), 0, n_values - 1).astype(np.int64)


def explain_lime(black_box: BlackBox, train_codes: np.ndarray, x: np.ndarray, target: int,
                 rng: np.random.Generator, n_samples: int = 5000, *, instance: dict[str, str]) -> LimeExplanation:
    """LIME's explanation of class ``target`` at codes ``x`` (``lime.lime_tabular``, no discretisation);
    ``instance``: the instance's own values, as shown."""
    from lime.lime_tabular import LimeTabularExplainer

    d = black_box.discretiser
    nominal = d.nominal
    seed = int(rng.integers(2**31))
    calls0, batches0, started = black_box.calls, black_box.batches, time.perf_counter()
    explainer = LimeTabularExplainer(train_codes.astype(float), feature_names=d.names,
                                     categorical_features=np.flatnonzero(nominal).tolist(),
                                     discretize_continuous=False, random_state=seed)

    def predict(z: np.ndarray) -> np.ndarray:
        return black_box.proba(_valid_codes(z, d.n_values), rng)

    exp = explainer.explain_instance(x.astype(float), predict, labels=(target,), num_features=len(x),
                                     num_samples=n_samples)
    coef = np.zeros(len(x))
    for j, w in exp.local_exp[target]:
        coef[j] = w
    out = LimeExplanation(
        method="lime", rule=[], features=[], weights=dict(zip(d.names, normalise(coef).tolist())),
        accuracy=None, coverage=1.0, predicted_class=_class_name(black_box, target), seed=seed,
        black_box_calls=black_box.calls - calls0, black_box_batches=black_box.batches - batches0,
        seconds=time.perf_counter() - started, instance=instance, codes=x.tolist(), coef=coef.tolist(),
        intercept=float(exp.intercept[target]), mean=explainer.scaler.mean_.tolist(),
        scale=explainer.scaler.scale_.tolist(), nominal=nominal.tolist(), score=float(exp.score))
    out.faithful = bool(out.predict(x[None, :])[0])
    return out


def explain_anchor(black_box: BlackBox, train_codes: np.ndarray, x: np.ndarray, target: int, tau: float,
                   rng: np.random.Generator, *, instance: dict[str, str], delta: float = 0.05, epsilon: float = 0.05,
                   beam_size: int = 10, batch_size: int = 100) -> Explanation:
    """Anchor's explanation (``anchor.anchor_tabular``) with precision threshold ``tau``; ``instance``: the
    instance's own values, as shown."""
    from anchor.anchor_tabular import AnchorTabularExplainer

    d: Discretiser = black_box.discretiser
    names = {j: [f.predicate(c) for c in range(f.n_values)] for j, f in enumerate(d.features)}
    calls0, batches0, started = black_box.calls, black_box.batches, time.perf_counter()
    explainer = AnchorTabularExplainer(black_box.classes or None, d.names, train_codes, names)

    def predict(z: np.ndarray) -> np.ndarray:
        return black_box.labels(np.asarray(z, dtype=np.int64), rng)

    seed = int(rng.integers(2**31))
    with _numpy_global_seed(np.random.default_rng(seed)), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        exp = explainer.explain_instance(x, predict, threshold=tau, delta=delta, tau=epsilon,
                                         batch_size=batch_size, beam_size=beam_size, desired_label=target)
    features = [int(f) for f in exp.features()]
    return Explanation(
        method="anchor", rule=d.predicates(features, x), features=features, weights={},
        accuracy=float(exp.precision()), coverage=float(exp.coverage()),
        predicted_class=_class_name(black_box, target), seed=seed, black_box_calls=black_box.calls - calls0,
        black_box_batches=black_box.batches - batches0, seconds=time.perf_counter() - started,
        instance=instance, codes=x.tolist())


def _class_name(black_box: BlackBox, target: int) -> str:
    return black_box.classes[target] if target < len(black_box.classes) else str(target)
