"""The informed threat model (issue 17, threat model 3): the anonymisation method is public.

The attacker holds raw reference recordings of every subject (the re-identification training
split), runs the published method on them with its own seed (its own noise and DFI targets,
never the release's), trains every attacker on that output with the true subjects, and
re-identifies the released test recordings. A method that hides identity behind a fixed
change of the signals fools a network trained on raw data, but not this attacker, who learns
the identity cues of the changed signals directly.

Chance is uniform guessing among the N subjects (1/N), not the majority subject's share, so a
dataset whose subjects hold unequal shares of the recordings cannot make a leaky release look
safe. Rows carry ``train_data == INFORMED`` and are otherwise built, seeded and scored like the
harness's retrained attackers (:func:`anonaudit.evaluate.protocols.retrain_attackers`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from anonaudit.data.dataset import SensorDataset
from anonaudit.data.windows import Windows, make_windows
from anonaudit.errors import DataError
from anonaudit.evaluate.protocols import (EvalConfig, ModelScore, classifier_factory, reid_split, release_attackers,
                                          retrain_attackers, same_windows)
from anonaudit.progress import ProgressFn, null_progress, scaled

INFORMED = "informed"  # the ``train_data`` of this threat model's rows

WindowTransform = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""The published method on windows: ``(X (n, T, C), subject codes, activity codes) → X′`` of the same shape.

Subject codes index ``SensorDataset.subject_ids`` of the dataset the windows come from.
"""


def informed_attack(real: SensorDataset, released_aligned: SensorDataset, assignment: Mapping[str, str],
                    transform: WindowTransform, cfg: EvalConfig, progress: ProgressFn = null_progress) -> list[ModelScore]:
    """Re-identify the released test recordings with attackers trained on the published method's own output.

    ``released_aligned`` is the release aligned with ``real`` (:func:`~anonaudit.evaluate.protocols.align_released`);
    ``assignment`` (recording id → "train" | "val" | "test") is the re-identification split of the
    harness: the attacker's reference recordings are the train recordings, the targets the test
    ones (val recordings are not used: the attacker holds no labelled released data).
    ``transform`` is the published method as the attacker runs it, with the attacker's own seed.
    Returns one row per attacker (``cfg.reid_model`` first, then ``cfg.attackers``) and level.
    """
    cfg.check()
    _check_aligned(real, released_aligned)
    windows = make_windows(real, cfg.window_s, cfg.stride_s)
    split = reid_split(real, windows, assignment)
    reference, test = windows.subset(split == "train"), windows.subset(split == "test")
    progress(0.0, "informed attacker: running the published method on its reference recordings")
    own = replace(reference, X=_published_output(transform, reference))
    scores = retrain_attackers(release_attackers(cfg), classifier_factory(real, cfg), own, None,
                               same_windows(test, released_aligned), cfg, train_data=INFORMED, test_data="released",
                               epoch_seconds={}, progress=scaled(progress, 0.1, 1.0))
    return [_uniform_chance(s, len(real.subjects)) for s in scores]


def _check_aligned(real: SensorDataset, released: SensorDataset) -> None:
    """Released windows are cut at the real windows' positions, which is only right for an aligned release."""
    if released.channels != real.channels:
        problem = f"its channels {released.channels[:4]}… are not the original's {real.channels[:4]}…"
    elif not np.array_equal(released.recordings["recording"].to_numpy(), real.recordings["recording"].to_numpy()):
        problem = "its recordings are not the original's in the original's order"
    elif (not np.array_equal(released.recordings["length"].to_numpy(), real.recordings["length"].to_numpy())
          or released.signals.shape != real.signals.shape):
        problem = "its recordings do not have the original's lengths"
    else:
        return
    raise DataError(f"the release is not aligned with the original: {problem}; align it with align_released first")


def _published_output(transform: WindowTransform, reference: Windows) -> np.ndarray:
    """The transform's output on the reference windows, refused unless it is a finite batch of the same shape."""
    # copies: the codes are the attackers' labels and strata afterwards, whatever the transform does to its inputs
    out = np.asarray(transform(reference.X, reference.subject.copy(), reference.y.copy()))
    if out.shape != reference.X.shape:
        raise DataError(f"the published transform returned windows shaped {out.shape} for windows shaped "
                        f"{reference.X.shape}; it must return one window of the same length and channels per input")
    bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    if bad:
        raise DataError(f"the published transform returned {bad} non-finite values (NaN or infinite)")
    return out.astype(np.float32, copy=False)


def _uniform_chance(score: ModelScore, n_subjects: int) -> ModelScore:
    """Chance as guessing uniformly among the N subjects (1/N, top-5: 5/N), whatever each subject's share."""
    chance = {**score.report.chance, "accuracy": 1.0 / n_subjects, "balanced_accuracy": 1.0 / n_subjects,
              "top5_accuracy": min(5, n_subjects) / n_subjects}
    return replace(score, report=replace(score.report, chance=chance))
