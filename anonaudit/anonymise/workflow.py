"""Anonymisation end to end, without the job store: split, frozen ReID, fit, release, judge.

The frozen re-identification network is trained once on the real training recordings and
shared by every method compared on a dataset (it is the network the GAN variants play against
and the papers' "frozen" attacker). The released dataset is then judged by the evaluation
harness — frozen network *and* attackers retrained on released data — and, for identity
transfer, by how often windows land on their target.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from anonaudit.anonymise.config import GAN_METHODS, AnonymiserConfig
from anonaudit.anonymise.method import Method
from anonaudit.anonymise.methods import build
from anonaudit.anonymise.published import published
from anonaudit.anonymise.release import Release
from anonaudit.data.dataset import SensorDataset
from anonaudit.data.splits import recording_assignment
from anonaudit.data.windows import Windows, make_windows
from anonaudit.evaluate.attackers import Classifier, make_classifier
from anonaudit.evaluate.informed import informed_attack
from anonaudit.evaluate.linkage import coarsen_metadata, metadata_linkage
from anonaudit.evaluate.memorisation import memorisation
from anonaudit.evaluate.protocols import EvalConfig, EvalResult, ModelScore, align_released, evaluate, same_windows
from anonaudit.evaluate.verdict import Check
from anonaudit.progress import ProgressFn, null_progress, scaled

QUANTA_S = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)  # recording-length quanta ``publish`` tries, in turn
MIN_DISTANCE_RATIO = 0.95  # released windows at least this far (relative to held-out ones) from the training windows


@dataclass
class Setup:
    """What every method on one dataset shares: windows, the recording split, the frozen ReID."""

    windows: Windows
    assignment: dict[str, str]
    split: np.ndarray  # "train" | "val" | "test" per window
    frozen: Classifier | None

    def part(self, name: str) -> Windows:
        return self.windows.subset(self.split == name)


def _classifier(name: str, n_classes: int, ds: SensorDataset, cfg: EvalConfig, seed_offset: int) -> Classifier:
    groups = {g: [ds.channels.index(c) for c in chans] for g, chans in ds.channel_groups.items()}
    return make_classifier(name, n_classes, config=replace(cfg.train, seed=cfg.seed + seed_offset),
                           channel_groups=groups, channels=ds.channels)


def prepare(real: SensorDataset, cfg: EvalConfig, *, assignment: dict[str, str] | None = None,
            train_reid: bool = True, progress: ProgressFn = null_progress) -> Setup:
    """Windows, the re-identification split (every subject in every part) and the frozen ReID."""
    windows = make_windows(real, cfg.window_s, cfg.stride_s)
    windows = windows.subset(windows.y >= 0)
    assignment = assignment or recording_assignment(real, cfg.recording_fractions, by=cfg.recording_order)
    split = real.recordings["recording"].map(assignment).to_numpy(dtype=object)[windows.recording]
    setup = Setup(windows, assignment, split, None)
    if train_reid:
        train_frozen(real, setup, cfg, progress)
    progress(1.0, "frozen re-identification network trained")
    return setup


def train_frozen(real: SensorDataset, setup: Setup, cfg: EvalConfig, progress: ProgressFn = null_progress) -> None:
    """Train the shared frozen ReID (``cfg.reid_model``) on the setup's train part, validated on its val part."""
    tr, va = setup.part("train"), setup.part("val")
    frozen = _classifier(cfg.reid_model, len(real.subjects), real, cfg, 3)
    setup.frozen = frozen.fit(tr.X, tr.subject, va.X if len(va) else None, va.subject if len(va) else None,
                              progress=progress, strata=tr.y)


def fit_anonymiser(real: SensorDataset, setup: Setup, config: AnonymiserConfig,
                   progress: ProgressFn = null_progress, checkpoint: Path | None = None) -> Method:
    """Train an anonymiser on the real training recordings of all subjects.

    A method that follows recordings (donor mixing) gets the training recordings cut at
    half-window hops, as a release cuts its tiles, with each window's recording.
    """
    method = build(config)
    common = dict(subjects=real.subject_ids, channels=real.channels, n_activities=len(real.activities),
                  checkpoint=checkpoint, progress=progress)
    if method.follows_recordings:
        length = setup.windows.length
        tiles = make_windows(real, length, length // 2, unit="samples")
        train = real.recordings["recording"].map(setup.assignment).to_numpy(dtype=object)[tiles.recording] == "train"
        tr = tiles.subset(train & (tiles.y >= 0))
        # a stretch ends where the recording changes or a dropped (unlabelled) window leaves a gap
        stretch = np.cumsum(np.r_[True, (np.diff(tr.recording) != 0) | (np.diff(tr.start) != length // 2)])
        return method.fit(tr.X, tr.subject, tr.y, recording=stretch, **common)
    tr = setup.part("train")
    return method.fit(tr.X, tr.subject, tr.y, reid=setup.frozen if config.method in GAN_METHODS else None, **common)


def judge(real: SensorDataset, release: Release, setup: Setup, cfg: EvalConfig,
          progress: ProgressFn = null_progress) -> EvalResult:
    """The evaluation harness on the release, against the shared frozen ReID."""
    aligned = align_released(real, release.dataset, release.recording_linkage, release.padding)
    return evaluate(real, aligned, cfg, progress=progress, reid_assignment=setup.assignment, frozen_reid=setup.frozen)


def dfi_transfer(real: SensorDataset, release: Release, setup: Setup, cfg: EvalConfig,
                 independent: str = "logreg") -> pd.DataFrame:
    """Identity-transfer success per target subject (the paper's Table 4 layout).

    For the released windows of the test recordings: the share the frozen ReID assigns to the
    target, the share an independently trained ReID (``independent``, fitted on real training
    windows, never seen by the generator) assigns to it, and HAR weighted F1 of a HAR model
    trained on real windows.
    """
    aligned = align_released(real, release.dataset, release.recording_linkage, release.padding)
    test = setup.part("test")
    released = same_windows(test, aligned)
    ids = real.recordings["recording"].to_numpy()
    subject_code = {s: i for i, s in enumerate(real.subject_ids)}
    target = np.array([subject_code[release.targets[ids[r]]] for r in test.recording])
    tr = setup.part("train")
    other = _classifier(independent, len(real.subjects), real, cfg, 20).fit(tr.X, tr.subject, strata=tr.y)
    har = _classifier(cfg.har_model, len(real.activities), real, cfg, 21).fit(tr.X, tr.y)
    frozen_hit = setup.frozen.predict_proba(released.X, strata=test.y).argmax(1) == target if setup.frozen else np.nan
    other_hit = other.predict_proba(released.X, strata=test.y).argmax(1) == target
    har_pred = har.predict_proba(released.X).argmax(1)
    frame = pd.DataFrame({"target": np.asarray(real.subject_ids, dtype=object)[target], "frozen": frozen_hit,
                          "independent": other_hit, "y": test.y, "pred": har_pred})
    rows = []
    for t, g in frame.groupby("target", sort=True):
        rows.append({"target": t, "windows": len(g), "transfer_frozen": float(g["frozen"].mean()),
                     "transfer_independent": float(g["independent"].mean()),
                     "har_wf1": float(f1_score(g["y"], g["pred"], average="weighted")),
                     "har_acc": float((g["y"] == g["pred"]).mean())})
    rows.append({"target": "all", "windows": len(frame), "transfer_frozen": float(frame["frozen"].mean()),
                 "transfer_independent": float(frame["independent"].mean()),
                 "har_wf1": float(f1_score(frame["y"], frame["pred"], average="weighted")),
                 "har_acc": float((frame["y"] == frame["pred"]).mean())})
    return pd.DataFrame(rows)


def publish(real: SensorDataset, release: Release, quantum_s: float | None, jitter_s: float,
            seed: int = 0) -> Release:
    """The release as it will be published: exact recording lengths and label timing where they do not
    link it to the original, otherwise coarsened (:func:`~anonaudit.evaluate.linkage.coarsen_metadata`).

    ``quantum_s``: None decides by measurement — the metadata-linkage attacker runs on the exact
    release and, while it re-identifies beyond twice uniform chance, on releases whose lengths are
    rounded up to each quantum of ``QUANTA_S`` in turn (the smallest that passes is published, so
    short recordings are not padded more than needed; if none passes, the largest, and the release
    check refuses it); 0 never coarsens; a positive value always rounds to it. The padding and
    jitter are drawn from the operating system's CSPRNG (the job seed would let anyone undo them);
    ``seed`` only breaks the attacker's ties.
    """
    if quantum_s == 0:
        return release
    if quantum_s is not None:
        return _coarsened(release, quantum_s, jitter_s)
    if metadata_linkage(real, release.dataset, release.recording_linkage, n_boot=0, seed=seed).passes():
        return release
    shortest = float(release.dataset.recordings["length"].min()) / release.dataset.sampling_rate
    for quantum in [q for q in QUANTA_S if q >= shortest / 4] or QUANTA_S[-1:]:
        coarse = _coarsened(release, quantum, jitter_s)
        if metadata_linkage(real, coarse.dataset, coarse.recording_linkage, n_boot=0, seed=seed).passes():
            break
    return coarse


def _coarsened(release: Release, quantum_s: float, jitter_s: float) -> Release:
    coarse, lead = coarsen_metadata(release.dataset, np.random.default_rng(), quantum_s=quantum_s, jitter_s=jitter_s)
    return replace(release, dataset=coarse, padding=dict(zip(coarse.recordings["recording"], lead.tolist())),
                   metadata_quantum_s=quantum_s)


def threats(real: SensorDataset, released: SensorDataset, linkage: dict[str, str], assignment: dict[str, str],
            anonymiser: Method, cfg: EvalConfig, windows: Windows, padding: dict[str, int] | None = None,
            progress: ProgressFn = null_progress) -> tuple[list[ModelScore], list[Check]]:
    """The threat models beyond frozen and linkage attackers (issue 17), on one release.

    * informed: the attacker runs the published anonymiser, with randomness of its own, on raw
      reference recordings of every subject and trains every attacker on that output;
    * metadata: released recordings linked to the original ones by duration and activity sequence;
    * memorisation: released training-recording windows against held-out real windows, by their
      distance to the nearest training window.
    ``released`` is the release as published (its metadata is what the linkage attacker sees);
    ``padding`` undoes its coarsened lengths for the signal judges.
    Returns the informed attackers' scores (rows like the harness's) and the other two as checks.
    """
    aligned = align_released(real, released, linkage, padding)
    transform = published(anonymiser, secrets.randbits(63), real)  # not the job seed: the attacker's own draws
    informed = informed_attack(real, aligned, assignment, transform, cfg, scaled(progress, 0.0, 0.8))
    progress(0.8, "metadata linkage")
    meta = metadata_linkage(real, released, linkage, n_boot=cfg.n_boot, seed=cfg.seed)
    checks = [Check("metadata", "duration and activity-sequence matcher", "recording", meta.metric, meta.score,
                    *meta.ci.get(meta.metric, (float("nan"), float("nan"))), meta.chance, 2 * meta.chance,
                    meta.passes())]
    progress(0.9, "memorisation")
    split = real.recordings["recording"].map(assignment).to_numpy(dtype=object)[windows.recording]
    train, held_out = windows.subset(split == "train"), windows.subset(split == "test")
    released_train = same_windows(train, aligned)
    mem = memorisation(train.X, held_out.X, released_train.X, holdout_groups=held_out.recording,
                       released_groups=train.recording, n_boot=cfg.n_boot, seed=cfg.seed)
    checks.append(Check("memorisation", "nearest training window", "window", "distance_ratio", mem.ratio, *mem.ci,
                        1.0, MIN_DISTANCE_RATIO, mem.passes(MIN_DISTANCE_RATIO)))
    progress(1.0, "threat models measured")
    return informed, checks
