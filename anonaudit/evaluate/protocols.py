"""The utility, privacy, soft-biometric and fidelity protocols.

* Utility: HAR trained on real windows of training subjects and scored on unseen subjects'
  real and released windows (the papers' frozen protocol), plus train-on-released/test-on-real.
* Privacy: re-identification with every subject in every split (split by recording), by the
  frozen network trained on real data AND by attackers retrained on released data, at window
  and recording level.
* Soft biometrics: attribute inference on unseen subjects, cross-validated over subjects
  stratified by the attribute, scored by balanced accuracy and distance from chance.
* Fidelity without labels: JSD between HAR class distributions, per-channel distances.

Released data is a window batch aligned one-to-one with the real windows (same recordings,
same positions), so "the same window, anonymised" is always well defined.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from anonaudit.data.dataset import SensorDataset
from anonaudit.data.splits import recording_assignment, split_subjects
from anonaudit.data.windows import Windows, make_windows
from anonaudit.errors import DataError, ParameterError
from anonaudit.evaluate.attackers import PER_ACTIVITY, Classifier, aggregate_by_group, classifier_names, make_classifier
from anonaudit.evaluate.linkage import strip_padding
from anonaudit.evaluate.metrics import ClassificationReport, classification_report, js_divergence
from anonaudit.models.training import TrainConfig
from anonaudit.progress import ProgressFn, null_progress, scaled

SAMPLING_MODES = ("all", "random", "uniform", "equidistant")
PROTOCOLS = ("utility", "privacy", "soft_biometrics")

ClassifierFactory = Callable[[str, int, int], Classifier]  # (model name, classes, seed offset) → unfitted model


@dataclass
class EvalConfig:
    """What to evaluate and how hard to train (defaults suit the sample data on 2 cores)."""

    window_s: float = 2.56
    stride_s: float = 1.28
    har_model: str = "tcnn"
    reid_model: str = "tcnn"
    attackers: tuple[str, ...] = ("tcnn_imu", "knn", "logreg_act")
    biometric_model: str = "forest"
    attributes: tuple[str, ...] | None = None
    subject_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    recording_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    recording_order: str | None = None
    training_sampling: str = "all"
    windows_per_recording: int = 8
    folds: int = 3
    protocols: tuple[str, ...] = PROTOCOLS
    train: TrainConfig = field(default_factory=TrainConfig)
    n_boot: int = 1000
    seed: int = 0

    def check(self) -> None:
        known = classifier_names()
        for param, names in (("har_model", [self.har_model]), ("reid_model", [self.reid_model]),
                             ("attackers", list(self.attackers)), ("biometric_model", [self.biometric_model])):
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ParameterError(param, f"unknown model {unknown[0]!r}; choose one of {known}")
        if self.har_model.endswith(PER_ACTIVITY):
            raise ParameterError("har_model", f"{self.har_model!r} conditions on the activity, which HAR must predict")
        if self.training_sampling not in SAMPLING_MODES:
            raise ParameterError("training_sampling", f"choose one of {list(SAMPLING_MODES)}")
        unknown = sorted(set(self.protocols) - set(PROTOCOLS))
        if unknown or not self.protocols:
            raise ParameterError("protocols", f"choose from {list(PROTOCOLS)}, got {list(self.protocols)}")
        if self.folds < 2:
            raise ParameterError("folds", f"need at least 2 folds, got {self.folds}")
        self.train.check()


@dataclass
class ModelScore:
    """One model scored on one split: the rows that go into the job store and report."""

    protocol: str
    model: str
    target: str
    train_data: str
    test_data: str
    level: str
    report: ClassificationReport
    extra: dict[str, float] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        tags = {k: getattr(self, k) for k in ("protocol", "model", "target", "train_data", "test_data", "level")}
        rows = [{**tags, **r} for r in self.report.rows()]
        rows += [{**tags, "metric": k, "value": v, "ci_low": np.nan, "ci_high": np.nan, "chance": np.nan}
                 for k, v in self.extra.items()]
        return rows


@dataclass
class EvalResult:
    scores: list[ModelScore]
    fidelity: dict[str, float]
    channel_distances: pd.DataFrame
    notes: list[str]
    activities: list[str]
    subjects: list[str]
    epoch_seconds: dict[str, float]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([r for s in self.scores for r in s.rows()])


# ----------------------------------------------------------------------------- alignment
def align_released(real: SensorDataset, released: SensorDataset, linkage: dict[str, str] | None = None,
                   padding: Mapping[str, int] | None = None) -> SensorDataset:
    """Check that ``released`` matches ``real`` recording by recording; return it re-ordered.

    ``linkage`` maps released recording id → original recording id (anonymised releases
    rename recordings). ``padding`` (released recording id → offset of the original samples)
    undoes a release's coarsened lengths (:func:`~anonaudit.evaluate.linkage.coarsen_metadata`)
    first, so the judges see every released sample of the source recording, and only those.
    Channels, rate and recording lengths must match exactly, otherwise every score computed
    afterwards would be silently wrong.
    """
    if released.channels != real.channels:
        raise DataError(f"released data has channels {released.channels[:8]}…, the original {real.channels[:8]}…")
    if released.sampling_rate != real.sampling_rate:
        raise DataError(f"released data is sampled at {released.sampling_rate} Hz, the original at {real.sampling_rate} Hz")
    ids = released.recordings["recording"].map(linkage) if linkage else released.recordings["recording"]
    if ids.isna().any():
        raise DataError(f"linkage does not cover released recordings {released.recordings['recording'][ids.isna()].tolist()[:5]}")
    if padding:
        rec = released.recordings["recording"]
        if not rec.isin(list(padding)).all():
            raise DataError(f"the padding record does not cover released recordings {rec[~rec.isin(list(padding))].tolist()[:5]}")
        lengths = ids.map(real.recordings.set_index("recording")["length"])
        if lengths.isna().any():
            raise DataError(f"released data maps to recordings {ids[lengths.isna()].tolist()[:5]} the original lacks")
        released = strip_padding(released, rec.map(padding).to_numpy(), lengths.to_numpy())
    position = pd.Series(np.arange(len(released.recordings)), index=ids.to_numpy())
    missing = sorted(set(real.recordings["recording"]) - set(position.index))
    if missing:
        raise DataError(f"released data lacks recordings {missing[:5]} of the original")
    order = position.loc[real.recordings["recording"]].to_numpy()
    lengths = released.recordings["length"].to_numpy()[order]
    bad = np.flatnonzero(lengths != real.recordings["length"].to_numpy())
    if len(bad):
        rec = real.recordings["recording"].iat[bad[0]]
        raise DataError(f"released recording for {rec!r} has {lengths[bad[0]]} samples, the original {real.recordings['length'].iat[bad[0]]}")
    slices = released.recording_slices()
    signals = np.concatenate([released.signals[slices[i]] for i in order]) if len(order) else released.signals
    return replace(real, signals=signals, name=released.name, source=released.source)


def same_windows(real: Windows, released_ds: SensorDataset) -> Windows:
    """The released data cut at exactly the real windows' positions."""
    starts = released_ds.recordings["start"].to_numpy()[real.recording] + real.start
    idx = starts[:, None] + np.arange(real.length)[None, :]
    return replace(real, X=released_ds.signals[idx])


# ----------------------------------------------------------------------------- sampling
def sample_training_windows(w: Windows, mode: str, per_recording: int, rng: np.random.Generator) -> Windows:
    """Training-window sampling (TimeSformer report): all, random, uniform stride, or equidistant.

    random: ``per_recording`` windows drawn at random from each recording; uniform: every k-th
    window so each recording keeps about ``per_recording``; equidistant: ``per_recording``
    windows spread evenly over each recording's duration.
    """
    if mode == "all" or len(w) == 0:
        return w
    keep = []
    for rec in np.unique(w.recording):
        idx = np.flatnonzero(w.recording == rec)
        n = min(per_recording, len(idx))
        if mode == "random":
            keep.append(np.sort(rng.choice(idx, n, replace=False)))
        elif mode == "uniform":
            keep.append(idx[:: max(1, len(idx) // per_recording)])
        else:
            keep.append(idx[np.unique(np.linspace(0, len(idx) - 1, n).round().astype(int))])
    return w.subset(np.concatenate(keep))


# ----------------------------------------------------------------------------- helpers
def _fit(model: Classifier, train: Windows, y_train: np.ndarray, val: Windows | None, y_val: np.ndarray | None,
         progress: ProgressFn) -> Classifier:
    return model.fit(train.X, y_train, val.X if val is not None else None, y_val, progress=progress, strata=train.y)


def _score(model: Classifier, test: Windows, y: np.ndarray, n_classes: int, cfg: EvalConfig, *,
           protocol: str, target: str, train_data: str, test_data: str, groups: np.ndarray,
           recording_level: bool = False) -> list[ModelScore]:
    proba = model.predict_proba(test.X, strata=test.y)
    out = [ModelScore(protocol, model.name, target, train_data, test_data, "window",
                      classification_report(y, proba.argmax(1), n_classes, groups=groups, proba=proba,
                                            n_boot=cfg.n_boot, seed=cfg.seed))]
    if recording_level:
        ids, mean = aggregate_by_group(proba, test.recording)
        first = np.unique(test.recording, return_index=True)[1]
        out.append(ModelScore(protocol, model.name, target, train_data, test_data, "recording",
                              classification_report(y[first], mean.argmax(1), n_classes, groups=groups[first],
                                                    proba=mean, n_boot=cfg.n_boot, seed=cfg.seed)))
    return out


def classifier_factory(real: SensorDataset, cfg: EvalConfig) -> ClassifierFactory:
    """Models by name for ``real``'s channels, seeded ``cfg.seed + offset``, so every threat model builds them alike."""
    groups_idx = {g: [real.channels.index(c) for c in chans] for g, chans in real.channel_groups.items()}

    def new(name: str, n_classes: int, seed_offset: int) -> Classifier:
        return make_classifier(name, n_classes, config=replace(cfg.train, seed=cfg.seed + seed_offset),
                               channel_groups=groups_idx, channels=real.channels)

    return new


def release_attackers(cfg: EvalConfig) -> list[str]:
    """The attackers trained against a release: the frozen network's architecture first, then ``cfg.attackers``."""
    return [cfg.reid_model] + [a for a in cfg.attackers if a != cfg.reid_model]


def reid_split(real: SensorDataset, windows: Windows, assignment: Mapping[str, str]) -> np.ndarray:
    """Each window's re-identification split (train, val or test); every subject must have train and test recordings."""
    _check_reid_assignment(real, assignment)
    return real.recordings["recording"].map(assignment).to_numpy(dtype=object)[windows.recording]


def retrain_attackers(names: Sequence[str], new: ClassifierFactory, train: Windows, val: Windows | None,
                      test: Windows, cfg: EvalConfig, *, train_data: str, test_data: str,
                      epoch_seconds: dict[str, float], progress: ProgressFn) -> list[ModelScore]:
    """Fit each attacker on ``train`` with the true subjects, score it on ``test`` by window and by recording.

    One loop for every threat model whose attacker learns from labelled windows, so their rows
    are built, seeded and scored the same way and stay comparable.
    """
    n_subj = len(train.subjects)
    scores: list[ModelScore] = []
    for i, name in enumerate(names):
        step = scaled(progress, i / len(names), (i + 1) / len(names))
        attacker = _fit(new(name, n_subj, 10 + i), train, train.subject, val, val.subject if val is not None else None, step)
        epoch_seconds.setdefault(f"reid_{name}", getattr(attacker, "epoch_seconds", 0.0))
        scores += _score(attacker, test, test.subject, n_subj, cfg, protocol="privacy", target="subject",
                         train_data=train_data, test_data=test_data, groups=test.recording, recording_level=True)
    return scores


def _attribute_labels(ds: SensorDataset, attribute: str) -> tuple[np.ndarray, list[str]] | None:
    """Per-subject class codes for an attribute; continuous ones split at the subjects' median."""
    col = ds.subjects[attribute]
    if col.isna().any():
        return None
    if pd.api.types.is_numeric_dtype(col) and col.nunique() > 4:
        median = float(col.median())
        return (col > median).to_numpy().astype(int), [f"<= {median:g}", f"> {median:g}"]
    levels = sorted(col.astype(str).unique())
    if len(levels) < 2:
        return None
    return col.astype(str).map({v: i for i, v in enumerate(levels)}).to_numpy(), levels


# ----------------------------------------------------------------------------- protocols
def evaluate(
    real: SensorDataset,
    released: SensorDataset | None = None,
    config: EvalConfig | None = None,
    progress: ProgressFn = null_progress,
    reid_assignment: Mapping[str, str] | None = None,
    frozen_reid: Classifier | None = None,
) -> EvalResult:
    """Run the configured protocols; ``released`` must be aligned with ``real`` (see :func:`align_released`).

    ``reid_assignment`` (recording id → "train" | "val" | "test") replaces the default
    re-identification split, e.g. to train on each subject's first session and test on the
    second; every subject must still have test recordings. ``frozen_reid`` is the network an
    anonymiser was trained against (fitted on the real training split of this assignment);
    without it one is trained here.
    """
    cfg = config or EvalConfig()
    cfg.check()
    rng = np.random.default_rng(cfg.seed)
    notes: list[str] = []
    windows = make_windows(real, cfg.window_s, cfg.stride_s)
    unlabelled = windows.y < 0
    if unlabelled.any():  # transitions and gaps: no activity to score, no stratum for attackers
        notes.append(f"{int(unlabelled.sum())} of {len(windows)} windows are mostly unlabelled and left out")
        windows = windows.subset(~unlabelled)
    rel_windows = same_windows(windows, released) if released is not None else None
    scores: list[ModelScore] = []
    epoch_seconds: dict[str, float] = {}
    new = classifier_factory(real, cfg)
    if "privacy" in cfg.protocols and reid_assignment is None:  # a split that cannot work fails before training
        reid_assignment = recording_assignment(real, cfg.recording_fractions, by=cfg.recording_order)
    fidelity: dict[str, float] = {}
    distances = pd.DataFrame()
    if "utility" in cfg.protocols:
        progress(0.0, "utility")
        fidelity, distances = _utility(real, windows, rel_windows, cfg, new, rng, scores, notes, epoch_seconds, progress)
        if released is not None:
            hop = windows.length // 2  # the release's tiles join at half-window hops
            fidelity["seam_score_real"], fidelity["seam_score_released"] = seam_score(real, hop), seam_score(released, hop)
    if "privacy" in cfg.protocols:
        progress(0.35, "re-identification")
        _privacy(real, windows, rel_windows, cfg, new, reid_assignment, frozen_reid, scores, epoch_seconds, progress)
    if "soft_biometrics" in cfg.protocols:
        progress(0.8, "soft biometrics")
        _soft_biometrics(real, windows if rel_windows is None else rel_windows, cfg, new,
                         "released" if rel_windows is not None else "real", scores, notes)
    progress(1.0, "done")
    return EvalResult(scores, fidelity, distances, notes, list(real.activities), real.subject_ids, epoch_seconds)


def _utility(real: SensorDataset, windows: Windows, rel_windows: Windows | None, cfg: EvalConfig, new: Any,
             rng: np.random.Generator, scores: list[ModelScore], notes: list[str], epoch_seconds: dict[str, float],
             progress: ProgressFn) -> tuple[dict[str, float], pd.DataFrame]:
    """HAR split by subject: real→real, real→released (frozen), released→real; fidelity."""
    n_act = len(real.activities)
    assign = split_subjects(real.subject_ids, cfg.subject_fractions, seed=cfg.seed)
    subj_ids = windows.subject_ids()
    part = {k: np.isin(subj_ids, v) for k, v in assign.items()}
    tr, va, te = (windows.subset(part[k]) for k in ("train", "val", "test"))
    tr_s = sample_training_windows(tr, cfg.training_sampling, cfg.windows_per_recording, rng)
    har = _fit(new(cfg.har_model, n_act, 1), tr_s, tr_s.y, va, va.y, scaled(progress, 0.0, 0.2))
    epoch_seconds[f"har_{cfg.har_model}"] = getattr(har, "epoch_seconds", 0.0)
    # one activity label per recording is only defined when recordings hold a single activity
    single = len(np.unique(np.stack([te.recording, te.y]), axis=1).T) == len(np.unique(te.recording))
    if not single:
        notes.append("recordings hold several activities: HAR is scored per window only")
    common = dict(protocol="utility", target="activity", groups=te.subject, recording_level=single)
    scores += _score(har, te, te.y, n_act, cfg, train_data="real", test_data="real", **common)
    fidelity: dict[str, float] = {}
    distances = pd.DataFrame()
    if rel_windows is not None:
        rtr, rva, rte = (rel_windows.subset(part[k]) for k in ("train", "val", "test"))
        scores += _score(har, rte, te.y, n_act, cfg, train_data="real", test_data="released", **common)
        rtr_s = sample_training_windows(rtr, cfg.training_sampling, cfg.windows_per_recording, rng)
        tstr = _fit(new(cfg.har_model, n_act, 2), rtr_s, rtr_s.y, rva, rva.y, scaled(progress, 0.2, 0.35))
        scores += _score(tstr, te, te.y, n_act, cfg, train_data="released", test_data="real", **common)
        p_real = np.bincount(har.predict_proba(te.X, strata=te.y).argmax(1), minlength=n_act)
        p_rel = np.bincount(har.predict_proba(rte.X, strata=rte.y).argmax(1), minlength=n_act)
        fidelity["har_prediction_jsd"] = js_divergence(p_real, p_rel)
        distances = channel_distances(te.X, rte.X, real.channels)
        fidelity["mean_wasserstein_z"] = float(distances["wasserstein_z"].mean())
        fidelity["mean_log_psd_distance"] = float(distances["log_psd_distance"].mean())
    return fidelity, distances


def _privacy(real: SensorDataset, windows: Windows, rel_windows: Windows | None, cfg: EvalConfig, new: Any,
             reid_assignment: Mapping[str, str] | None, frozen_reid: Classifier | None, scores: list[ModelScore],
             epoch_seconds: dict[str, float], progress: ProgressFn) -> None:
    """Re-identification split by recording: the frozen network and attackers retrained on released data."""
    n_subj = len(real.subjects)
    rec_assign = reid_assignment or recording_assignment(real, cfg.recording_fractions, by=cfg.recording_order)
    rec_split = reid_split(real, windows, rec_assign)
    r_tr, r_va, r_te = (windows.subset(rec_split == k) for k in ("train", "val", "test"))
    if frozen_reid is None:
        frozen = _fit(new(cfg.reid_model, n_subj, 3), r_tr, r_tr.subject, r_va, r_va.subject, scaled(progress, 0.35, 0.5))
        epoch_seconds[f"reid_{cfg.reid_model}"] = getattr(frozen, "epoch_seconds", 0.0)
    else:
        frozen = frozen_reid
    common = dict(protocol="privacy", target="subject", groups=r_te.recording, recording_level=True)
    scores += _score(frozen, r_te, r_te.subject, n_subj, cfg, train_data="real", test_data="real", **common)
    source = rel_windows if rel_windows is not None else windows
    source_name = "released" if rel_windows is not None else "real"
    a_tr, a_va, a_te = (source.subset(rec_split == k) for k in ("train", "val", "test"))
    if rel_windows is not None:
        scores += _score(frozen, a_te, r_te.subject, n_subj, cfg, train_data="real", test_data="released", **common)
    attackers = release_attackers(cfg) if rel_windows is not None else list(cfg.attackers)
    scores += retrain_attackers(attackers, new, a_tr, a_va, a_te, cfg, train_data=f"{source_name} (retrained)",
                                test_data=source_name, epoch_seconds=epoch_seconds, progress=scaled(progress, 0.5, 0.8))


def _soft_biometrics(real: SensorDataset, source: Windows, cfg: EvalConfig, new: Any, source_name: str,
                     scores: list[ModelScore], notes: list[str]) -> None:
    """Attribute inference on unseen subjects, cross-validated, stratified by the attribute."""
    attributes = cfg.attributes if cfg.attributes is not None else tuple(c for c in real.subjects.columns if c != "subject")
    for attribute in attributes:
        if attribute not in real.subjects:
            raise ParameterError("attributes", f"unknown subject attribute {attribute!r}; have {list(real.subjects.columns)}")
        labels = _attribute_labels(real, attribute)
        if labels is None:
            notes.append(f"attribute {attribute!r} skipped: missing values or a single level")
            continue
        codes, levels = labels
        score = _biometric_cv(source, codes, levels, attribute, cfg, new, source_name)
        if score is None:
            notes.append(f"attribute {attribute!r} skipped: fewer than {cfg.folds} subjects in some level")
        else:
            scores.append(score)


def _check_reid_assignment(ds: SensorDataset, assignment: Mapping[str, str]) -> None:
    recs = ds.recordings
    split = recs["recording"].map(assignment)
    if split.isna().any():
        raise DataError(f"re-identification split does not assign recordings {recs['recording'][split.isna()].tolist()[:5]}")
    for name in ("train", "test"):
        missing = sorted(set(recs["subject"]) - set(recs.loc[split == name, "subject"]))
        if missing:
            raise DataError(f"subjects {missing[:10]} have no recordings in the re-identification {name!r} split")


def _biometric_cv(source: Windows, subject_codes: np.ndarray, levels: list[str], attribute: str,
                  cfg: EvalConfig, new: Any, source_name: str) -> ModelScore | None:
    y = subject_codes[source.subject]
    counts = np.bincount(subject_codes, minlength=len(levels))
    if counts.min() < cfg.folds:
        return None
    folds = StratifiedGroupKFold(cfg.folds, shuffle=True, random_state=cfg.seed)
    proba = np.zeros((len(y), len(levels)))
    for k, (tr, te) in enumerate(folds.split(source.X, y, groups=source.subject)):
        model = new(cfg.biometric_model, len(levels), 100 + k)
        model.fit(source.X[tr], y[tr], strata=source.y[tr])
        proba[te] = model.predict_proba(source.X[te], strata=source.y[te])
    report = classification_report(y, proba.argmax(1), len(levels), groups=source.subject, n_boot=cfg.n_boot, seed=cfg.seed)
    extra = {"distance_from_chance": abs(report.scores["balanced_accuracy"] - 1.0 / len(levels))}
    if len(levels) == 2:
        extra["auc"] = float(roc_auc_score(y, proba[:, 1]))
    return ModelScore("soft_biometrics", cfg.biometric_model, attribute, f"{source_name} (retrained)", source_name,
                      "window", report, extra)


def channel_distances(real: np.ndarray, released: np.ndarray, channels: Sequence[str]) -> pd.DataFrame:
    """Per channel: Wasserstein-1 of values (in units of the real channel's σ) and log-PSD distance."""
    real2, rel2 = real.reshape(-1, real.shape[-1]), released.reshape(-1, released.shape[-1])
    sd = real2.std(0) + 1e-12
    wass = [wasserstein_distance(real2[:, j] / sd[j], rel2[:, j] / sd[j]) for j in range(real2.shape[1])]
    psd_real = np.log1p(np.mean(np.abs(np.fft.rfft(real, axis=1)) ** 2, axis=0))
    psd_rel = np.log1p(np.mean(np.abs(np.fft.rfft(released, axis=1)) ** 2, axis=0))
    return pd.DataFrame({"channel": list(channels), "wasserstein_z": wass,
                         "log_psd_distance": np.abs(psd_real - psd_rel).mean(0)})


def seam_score(ds: SensorDataset, hop: int) -> float:
    """How much the window grid shows in a signal: the largest over the smallest median squared step between
    consecutive samples, grouped by position within the recording modulo ``hop`` (channels z-scored).

    About 1 where nothing marks the grid (real data); window joins that jump raise the steps at one
    phase, and cross-faded joins of unrelated windows lower them mid-fade, so both stand out. Medians,
    not means: a few violent stretches (a fall, a transition) would otherwise decide the figure.
    """
    if hop < 2 or ds.n_samples < 2:
        return float("nan")
    rec = np.repeat(np.arange(len(ds.recordings)), ds.recordings["length"].to_numpy())
    position = np.arange(ds.n_samples) - ds.recordings["start"].to_numpy()[rec]
    scale = ds.signals.std(axis=0)
    steps = (np.diff(ds.signals, axis=0) / np.where(scale > 0, scale, 1.0)) ** 2
    inside = rec[1:] == rec[:-1]
    phase = position[1:][inside] % hop
    energy = steps[inside].mean(axis=1)
    order = np.argsort(phase, kind="stable")
    groups = np.split(energy[order], np.flatnonzero(np.diff(phase[order])) + 1)
    per_phase = np.array([np.median(g) for g in groups])
    return float(per_phase.max() / per_phase.min()) if len(per_phase) > 1 and per_phase.min() > 0 else float("nan")
