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
from anonaudit.anonymise.release import Release, pseudonym_per_recording
from anonaudit.data.dataset import SensorDataset
from anonaudit.data.runs import run_assignment, split_runs
from anonaudit.data.splits import recording_assignment
from anonaudit.data.windows import Windows, make_windows
from anonaudit.evaluate.attackers import Classifier, make_classifier
from anonaudit.evaluate.informed import informed_attack
from anonaudit.evaluate.linkage import ATTACKERS, coarsen_metadata, metadata_linkage
from anonaudit.evaluate.memorisation import membership, memorisation
from anonaudit.evaluate.protocols import EvalConfig, EvalResult, ModelScore, align_released, evaluate, same_windows
from anonaudit.evaluate.verdict import Check
from anonaudit.progress import ProgressFn, null_progress, scaled

QUANTA_S = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)  # recording-length quanta ``publish`` tries, in turn
TRIAL_DRAWS = 5  # coarsenings a publication is judged on before it is chosen
PSEUDONYMS = ("subject", "recording")  # pseudonym granularities ``plan_publication`` tries, in turn
MEMBERSHIP_FPR = 0.05  # the membership attack's false positive rate: its chance; the limit is twice that
MEMBERSHIP_ATTACKER = "distance to the closest released window"
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


@dataclass(frozen=True)
class Publication:
    """How a release is published: what a published recording is, whose pseudonym it carries, its length quantum."""

    runs: bool  # each activity run of a source recording is published as a recording of its own
    pseudonyms: str  # "subject": one per person (their recordings stay together); "recording": one each
    quantum_s: float | None  # lengths rounded up to multiples of this (None: exact lengths and label timing)

    def describe(self) -> str:
        unit = "activity run" if self.runs else "recording"
        lengths = f"lengths rounded up to multiples of {self.quantum_s:g} s" if self.quantum_s else "exact lengths"
        who = "one pseudonym per person" if self.pseudonyms == "subject" else f"a pseudonym of its own for every {unit}"
        return f"one published recording per source {unit}, {lengths}, {who}"


def _quanta(ds: SensorDataset, quantum_s: float | None) -> list[float | None]:
    if quantum_s == 0:
        return [None]
    if quantum_s is not None:
        return [quantum_s]
    shortest = float(ds.recordings["length"].min()) / ds.sampling_rate
    return [None, *([q for q in QUANTA_S if q >= shortest / 4] or QUANTA_S[-1:])]


def _links(source: SensorDataset, publication: Publication, jitter_s: float, seed: int) -> bool:
    """Whether a metadata attacker would link ``source`` published this way beyond twice uniform chance.

    A release keeps its source's lengths and labels until it is published, so the source's own
    metadata, under the publication's pseudonyms and quantum, is what the attackers would see.
    Coarsening is random and a few people's figures move in large steps, so a quantum is judged
    on ``TRIAL_DRAWS`` draws: the 90th percentile of each attacker's figure over draws (mean +
    1.28 standard deviations) must lie within the limit, so that one lucky draw does not leave
    the published one to chance.
    """
    recordings = source.recordings.assign(
        subject=source.recordings["subject" if publication.pseudonyms == "subject" else "recording"])
    view = replace(source, recordings=recordings, subjects=pd.DataFrame({"subject": recordings["subject"].unique()}))
    identity = {r: r for r in source.recordings["recording"]}
    rng = np.random.default_rng(seed)
    scores, limit = [], 1.0
    for _ in range(TRIAL_DRAWS if publication.quantum_s else 1):
        drawn = coarsen_metadata(view, rng, quantum_s=publication.quantum_s, jitter_s=jitter_s)[0] \
            if publication.quantum_s else view
        results = [metadata_linkage(source, drawn, identity, by=by, n_boot=0, seed=seed) for by in ATTACKERS]
        scores.append([r.score for r in results])
        limit = 2 * results[0].chance
    values = np.asarray(scores)
    return bool((values.mean(0) + 1.28 * values.std(0) > limit).any())


def plan_publication(real: SensorDataset, quantum_s: float | None, jitter_s: float, runs: bool | None = None,
                     seed: int = 0) -> Publication:
    """The least coarse publication that stops both metadata-linkage attackers, measured on the metadata alone.

    Tried in turn, the first that passes wins: whole recordings, then activity runs (``runs``
    None; True or False fixes it); within each, exact lengths, then lengths rounded up to each
    quantum of ``QUANTA_S`` that is not below a quarter of the shortest recording (``quantum_s``:
    0 keeps exact lengths, a positive value always rounds to it); at each, one pseudonym per
    person, then one per recording. Padding distorts every use of the data, separate pseudonyms
    only analyses per person, so a smaller quantum is preferred to shared pseudonyms. If none
    passes, the coarsest is returned and the release check refuses what it publishes. ``seed``
    draws the trial coarsening and breaks ties; the published draws come from the operating
    system.
    """
    last = None
    labelled = bool((real.labels >= 0).any())  # without labels there are no activity runs to cut
    for grain in ([False, True] if runs is None and labelled else [bool(runs)]):
        source = split_runs(real) if grain else real
        for quantum in _quanta(source, quantum_s):
            for pseudonyms in PSEUDONYMS:
                last = Publication(grain, pseudonyms, quantum)
                if not _links(source, last, jitter_s, seed):
                    return last
    assert last is not None
    return last


def source(real: SensorDataset, setup: Setup, cfg: EvalConfig, runs: bool) -> tuple[SensorDataset, Setup]:
    """The dataset a release is made from and judged against, with its setup: the recordings, or (``runs``) their
    activity runs, each on its recording's side of the split, with the same frozen ReID."""
    if not runs:
        return real, setup
    runs = split_runs(real)
    cut = prepare(runs, cfg, assignment=run_assignment(runs, setup.assignment), train_reid=False)
    cut.frozen = setup.frozen
    return runs, cut


def publish(release: Release, publication: Publication, jitter_s: float) -> Release:
    """The release as it will be published (:func:`plan_publication` says how).

    Pseudonyms per recording are drawn afresh; coarsened lengths are padded with mirrored samples
    and change points jittered (:func:`~anonaudit.evaluate.linkage.coarsen_metadata`). Every draw
    comes from the operating system's CSPRNG: the job seed would let anyone undo them.
    """
    if publication.pseudonyms == "recording":
        release = pseudonym_per_recording(release)
    release = replace(release, runs=publication.runs)
    if not publication.quantum_s:
        return release
    coarse, lead = coarsen_metadata(release.dataset, np.random.default_rng(), quantum_s=publication.quantum_s,
                                    jitter_s=jitter_s)
    return replace(release, dataset=coarse, padding=dict(zip(coarse.recordings["recording"], lead.tolist())),
                   metadata_quantum_s=publication.quantum_s)


def threats(real: SensorDataset, released: SensorDataset, linkage: dict[str, str], assignment: dict[str, str],
            anonymiser: Method, cfg: EvalConfig, windows: Windows, padding: dict[str, int] | None = None,
            progress: ProgressFn = null_progress) -> tuple[list[ModelScore], list[Check]]:
    """The threat models beyond frozen and linkage attackers (issue 17), on one release.

    * informed: the attacker runs the published anonymiser, with randomness of its own, on raw
      reference recordings of every subject and trains every attacker on that output;
    * metadata: released recordings linked to the original ones by duration and activity sequence, one by one
      and through their pseudonyms (a pseudonym's set of recordings against each subject's);
    * memorisation: released training-recording windows against held-out real windows, by their
      distance to the nearest training window;
    * membership inference: training against held-out real windows, by their distance to the
      closest window anywhere in the release (what copying a few training windows gives away).
    ``released`` is the release as published (its metadata is what the linkage attacker sees);
    ``padding`` undoes its coarsened lengths for the signal judges.
    Returns the informed attackers' scores (rows like the harness's) and the others as checks.
    """
    aligned = align_released(real, released, linkage, padding)
    transform = published(anonymiser, secrets.randbits(63), real)  # not the job seed: the attacker's own draws
    informed = informed_attack(real, aligned, assignment, transform, cfg, scaled(progress, 0.0, 0.8))
    progress(0.8, "metadata linkage")
    checks = []
    for by, attacker in ATTACKERS.items():
        meta = metadata_linkage(real, released, linkage, by=by, n_boot=cfg.n_boot, seed=cfg.seed)
        checks.append(Check("metadata", attacker, "recording", meta.metric, meta.score,
                            *meta.ci.get(meta.metric, (float("nan"), float("nan"))), meta.chance, 2 * meta.chance,
                            meta.passes()))
    progress(0.9, "memorisation and membership inference")
    split = real.recordings["recording"].map(assignment).to_numpy(dtype=object)[windows.recording]
    train, held_out = windows.subset(split == "train"), windows.subset(split == "test")
    released_train = same_windows(train, aligned)
    mem = memorisation(train.X, held_out.X, released_train.X, holdout_groups=held_out.recording,
                       released_groups=train.recording, n_boot=cfg.n_boot, seed=cfg.seed)
    checks.append(Check("memorisation", "nearest training window", "window", "distance_ratio", mem.ratio, *mem.ci,
                        1.0, MIN_DISTANCE_RATIO, mem.passes(MIN_DISTANCE_RATIO)))
    members = membership(train.X, held_out.X, same_windows(windows, aligned).X, train_groups=train.recording,
                         holdout_groups=held_out.recording, fpr=MEMBERSHIP_FPR, n_boot=cfg.n_boot, seed=cfg.seed)
    checks.append(Check("membership", MEMBERSHIP_ATTACKER, "window", "true_positive_rate", members.tpr,
                        *members.ci, members.fpr, 2 * members.fpr, members.passes()))
    progress(1.0, "threat models measured")
    return informed, checks
