"""A trained anonymiser as the informed attacker runs it (issue 17, threat model 3).

The method is public: the attacker has the same weights but not the release's randomness, so it
draws its own noise (and, for identity transfer and Anon_AcG, its own random targets) from a seed of its own.
"""

from __future__ import annotations

import numpy as np

from anonaudit.anonymise.method import Method
from anonaudit.data.dataset import SensorDataset
from anonaudit.errors import ParameterError
from anonaudit.evaluate.informed import WindowTransform


def published(anonymiser: Method, seed: int, dataset: SensorDataset) -> WindowTransform:
    """``anonymiser.transform`` with the attacker's own randomness, for windows of ``dataset``.

    The transform's subject codes index ``dataset.subject_ids`` and are mapped onto the
    anonymiser's own vocabulary. Every call draws fresh noise; DFI and AcG condition each window on
    a random subject other than its own, as a release does each recording.
    """
    anonymiser.check_channels(dataset.channels)
    codes = anonymiser.subject_codes(dataset.subject_ids, "dataset")
    n = len(anonymiser.subjects_)
    targets = anonymiser.draws_targets
    if targets and n < 2:
        raise ParameterError("anonymiser", "a release under a random other subject's code needs at least two subjects")
    rng = np.random.default_rng(seed)

    def transform(X: np.ndarray, subject: np.ndarray, activity: np.ndarray) -> np.ndarray:
        source = codes[subject]
        target = (source + rng.integers(1, n, size=len(source))) % n if targets else None
        return anonymiser.transform(X, source, target, seed=int(rng.integers(2**63 - 1)), activity=activity)

    return transform
