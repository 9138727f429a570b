"""Metadata linkage: re-identifying released recordings by their length and label timing alone.

Threat model 4 of issue 17. The attacker holds the original dataset's metadata (a published
protocol or the original's recordings table and per-sample activity labels) but none of its
signals, and links each released recording to the original recording whose metadata matches
best. Neither the identifier check nor the signal attackers look at this: a release that keeps
exact recording lengths and label change points can be re-linked recording by recording however
well its signals are anonymised.

The attacker's signature of a recording is its duration in seconds (so a resampled release is
matched too) and its activity profile: the label at ``grid`` evenly spaced relative positions,
which encodes the run-length encoding of the activity sequence and its change points. The cost
of a (released, original) pair is the relative length difference plus the share of profile
positions whose activity differs, so small perturbations cost little, plus 1 unless the two
are identical sample by sample (same length, same label everywhere), so that exact matches,
which the profile's finite resolution cannot always tell apart, win first. Releases are
one-to-one, so the links are the minimum-cost assignment (Hungarian); ties are broken by a
seeded random order of the originals, never by table order.

A second attacker uses the pseudonyms: the recordings under one pseudonym are one person's, so
it matches each pseudonym's *set* of recordings against each subject's. Evidence too weak to
link any one recording adds up over a person's recordings (UTD-MHAD: with lengths rounded to 1 s
one recording at a time links 20 % of recordings against 12.5 % chance; the sets under shared
pseudonyms link all eight people).

The defences: :func:`coarsen_metadata` rounds lengths up to a quantum (padded, never trimmed)
and jitters change points; a release can also give every recording a pseudonym of its own, and
cut long sessions into their activity runs (:mod:`anonaudit.data.runs`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from anonaudit.data.dataset import SensorDataset
from anonaudit.errors import DataError, ParameterError
from anonaudit.evaluate.metrics import classification_report
from anonaudit.progress import ProgressFn, null_progress


@dataclass(frozen=True)
class LinkageResult:
    """Recording-level re-identification by metadata, against uniform chance 1/N subjects.

    ``accuracy`` is the share of released recordings linked to an original recording of their
    true subject (the exact recording or another of the same subject); ``exact_link_rate`` the
    share linked to exactly their own original recording (NaN for the pseudonym-group attacker,
    which links to people). ``ci`` holds subject-bootstrap 95 %
    intervals of ``accuracy`` and ``balanced_accuracy``; ``risk`` is Anonymeter's
    (accuracy − chance) / (1 − chance), ``risk_ci`` the same transform of the accuracy interval.
    """

    accuracy: float
    balanced_accuracy: float
    ci: dict[str, tuple[float, float]]
    chance: float
    risk: float
    risk_ci: tuple[float, float]
    exact_link_rate: float
    n_recordings: int
    n_subjects: int

    @property
    def metric(self) -> str:
        """Which accuracy the limit applies to: the larger, so a skewed dataset cannot hide behind either."""
        return "balanced_accuracy" if self.balanced_accuracy > self.accuracy else "accuracy"

    @property
    def score(self) -> float:
        """The value of :attr:`metric` (its interval is ``ci[metric]``)."""
        return max(self.accuracy, self.balanced_accuracy)

    def passes(self, max_chance_multiple: float = 2.0) -> bool:
        """Whether re-identification stays within ``max_chance_multiple`` × uniform chance."""
        return self.score <= max_chance_multiple * self.chance


def _durations(ds: SensorDataset) -> np.ndarray:
    return ds.recordings["length"].to_numpy(np.float64) / ds.sampling_rate


def _profiles(ds: SensorDataset, grid: int, codes: np.ndarray) -> np.ndarray:
    """(n_recordings, grid) activity codes at evenly spaced relative positions of each recording."""
    starts = ds.recordings["start"].to_numpy(np.int64)
    lengths = ds.recordings["length"].to_numpy(np.int64)
    position = np.floor((np.arange(grid) + 0.5) / grid * lengths[:, None]).astype(np.int64)
    labels = ds.labels[starts[:, None] + position]
    return np.where(labels >= 0, codes[np.maximum(labels, 0)], -1)


def _exact_keys(ds: SensorDataset, codes: np.ndarray, seen: dict[bytes, int]) -> np.ndarray:
    """One integer per recording, equal exactly when two recordings have the same label at every sample."""
    labels = np.where(ds.labels >= 0, codes[np.maximum(ds.labels, 0)], -1).astype(np.int16)
    digests = (hashlib.blake2b(labels[part].tobytes(), digest_size=16).digest() for part in ds.recording_slices())
    return np.array([seen.setdefault(d, len(seen)) for d in digests], dtype=np.int64)


def _profile_mismatch(released: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Share of grid positions whose activity differs, for every pair (one matrix product of one-hot profiles).

    Computed on distinct profiles and gathered: protocol datasets repeat a few profiles many
    times (SisFall: one per activity), which keeps the 4,500 × 4,500 case cheap.
    """
    rel_unique, rel_of = np.unique(released, axis=0, return_inverse=True)
    orig_unique, orig_of = np.unique(original, axis=0, return_inverse=True)
    values = np.union1d(rel_unique, orig_unique)

    def one_hot(profiles: np.ndarray) -> np.ndarray:
        return (profiles[:, :, None] == values).reshape(len(profiles), -1).astype(np.float32)

    same = one_hot(rel_unique) @ one_hot(orig_unique).T
    return 1 - same[rel_of.reshape(-1)][:, orig_of.reshape(-1)] / released.shape[1]


def _truth(original: SensorDataset, released: SensorDataset, linkage: Mapping[str, str]) -> np.ndarray:
    """Index in ``original`` of each released recording's source; DataError naming what does not fit."""
    released_ids = released.recordings["recording"].tolist()
    missing = [r for r in released_ids if r not in linkage]
    if missing:
        raise DataError(f"the linkage lacks released recordings {missing[:5]}; pass the release's own linkage")
    extra = sorted(set(linkage) - set(released_ids))
    if extra:
        raise DataError(f"the linkage names recordings {extra[:5]} that the released dataset does not have")
    index = {rec: i for i, rec in enumerate(original.recordings["recording"])}
    unknown = sorted({linkage[r] for r in released_ids} - set(index))
    if unknown:
        raise DataError(f"the linkage names original recordings {unknown[:5]} that the original dataset does not "
                        "have; pass the dataset the release was made from")
    truth = np.array([index[linkage[r]] for r in released_ids], dtype=np.int64)
    values, counts = np.unique(truth, return_counts=True)
    if (counts > 1).any():
        twice = original.recordings["recording"].iat[int(values[counts > 1][0])]
        raise DataError(f"the linkage maps several released recordings to original recording {twice!r}; "
                        "releases are one-to-one")
    return truth


ATTACKERS = {"recording": "duration and activity-sequence matcher",
             "pseudonym": "pseudonym-group matcher"}  # what ``by`` links, as the verdict names it


def _costs(original: SensorDataset, released: SensorDataset, grid: int) -> np.ndarray:
    """(released, original) cost of linking each pair: relative length difference, profile mismatch, not-exact."""
    own_codes = np.arange(len(original.activities))
    released_codes = np.array([original.activities.index(a) for a in released.activities], dtype=np.int64)
    rel_len, orig_len = _durations(released), _durations(original)
    cost = np.abs(rel_len[:, None] - orig_len[None, :]) / np.maximum(rel_len[:, None], orig_len[None, :])
    cost += _profile_mismatch(_profiles(released, grid, released_codes), _profiles(original, grid, own_codes))
    seen: dict[bytes, int] = {}
    cost += _exact_keys(released, released_codes, seen)[:, None] != _exact_keys(original, own_codes, seen)[None, :]
    return cost


def _group_links(cost: np.ndarray, pseudonym_of: np.ndarray, subject_of: np.ndarray, n_subjects: int,
                 order: np.ndarray) -> np.ndarray:
    """Subject code each released recording is linked to through its pseudonym.

    Where the release has as many pseudonyms as the original has subjects, the attacker takes
    them for one person each: a pseudonym's recordings are matched one-to-one to each subject's
    (minimum total cost, an unmatched recording costing 1, as much as the largest length
    difference), and pseudonyms and subjects are assigned one-to-one. Otherwise set sizes say
    nothing, and each pseudonym goes to the subject whose recordings match its own best on
    average (for one recording a pseudonym: the subject of the nearest original recording).
    ``order`` (a permutation of the subjects) breaks ties.
    """
    n_groups = int(pseudonym_of.max()) + 1
    one_to_one = n_groups == n_subjects
    column = np.argsort(order)[subject_of]  # each original recording's subject, as a column of the group cost
    by_subject = np.argsort(column, kind="stable")
    bounds = np.searchsorted(column[by_subject], np.arange(n_subjects))
    if not one_to_one and n_groups == len(pseudonym_of):  # one recording each: the nearest recording's subject
        nearest = np.minimum.reduceat(cost[:, by_subject], bounds, axis=1)
        group_cost = np.empty_like(nearest)
        group_cost[pseudonym_of] = nearest
    else:
        group_cost = np.empty((n_groups, n_subjects))
        cols = np.split(by_subject, bounds[1:])
        for g in range(n_groups):
            rows = np.flatnonzero(pseudonym_of == g)
            for j, c in enumerate(cols):
                sub = cost[np.ix_(rows, c)]
                i, k = linear_sum_assignment(sub)
                matched = sub[i, k].sum()
                group_cost[g, j] = matched + abs(len(rows) - len(c)) if one_to_one else matched / len(i)
    linked = linear_sum_assignment(group_cost)[1] if one_to_one else group_cost.argmin(1)
    return order[linked][pseudonym_of]


def metadata_linkage(
    original: SensorDataset,
    released: SensorDataset,
    linkage: Mapping[str, str],
    *,
    by: str = "recording",
    grid: int = 256,
    n_boot: int = 1000,
    seed: int = 0,
    progress: ProgressFn = null_progress,
) -> LinkageResult:
    """Link every released recording to an original one by metadata and score the links by subject.

    ``by="recording"`` links recording by recording (minimum-cost assignment of released to
    original recordings). ``by="pseudonym"`` uses what the release's pseudonyms give away: all
    recordings under one pseudonym are one person's, so the attacker matches each pseudonym's
    set of recordings against each subject's (a person whose activities are all a little slower
    is recognisable from the set when no single recording gives them away) and links every
    recording of a pseudonym to its subject.

    ``linkage`` (released recording id → original recording id, the release's private linkage)
    is used only to score the attacker, never by it; the true subject is the source recording's
    (for identity transfer too, whose pseudonyms name the target). ``grid`` positions locate a
    change point to 1/grid of its recording. With ``n_boot=0`` there is no interval: ``ci`` is
    empty and ``risk_ci`` is (nan, nan).
    """
    if by not in ATTACKERS:
        raise ParameterError("by", f"must be one of {sorted(ATTACKERS)}, got {by!r}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ParameterError("grid", f"must be a positive whole number of profile positions, got {grid!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise ParameterError("n_boot", f"must be a whole number of bootstrap resamples >= 0, got {n_boot!r}")
    for role, ds in (("original", original), ("released", released)):
        if ds.recordings.empty:
            raise DataError(f"the {role} dataset {ds.name!r} has no recordings")
    subjects, subject_of = np.unique(original.recordings["subject"].to_numpy(), return_inverse=True)
    if len(subjects) < 2:
        raise DataError(f"the original dataset {original.name!r} has one subject; re-identification needs two or more")
    strange = sorted(set(released.activities) - set(original.activities))
    if strange:
        raise DataError(f"the released dataset has activities {strange[:5]} that the original does not")
    truth = _truth(original, released, linkage)

    cost = _costs(original, released, grid)
    progress(0.6, "compared recording lengths and activity profiles")
    rng = np.random.default_rng(seed)  # ties broken at random, not by table order
    if by == "recording":
        order = rng.permutation(cost.shape[1])
        _, columns = linear_sum_assignment(cost[:, order])
        exact = float(np.mean(order[columns] == truth))
        linked = subject_of[order[columns]]
    else:
        exact = math.nan  # pseudonyms link to a subject, not to one recording
        _, pseudonym_of = np.unique(released.recordings["subject"].to_numpy(), return_inverse=True)
        linked = _group_links(cost, pseudonym_of, subject_of, len(subjects), rng.permutation(len(subjects)))
    progress(0.9, "assigned released recordings to original ones")

    y_true = subject_of[truth]
    report = classification_report(y_true, linked, len(subjects), groups=y_true, n_boot=n_boot, seed=seed)
    chance = 1.0 / len(subjects)
    accuracy = report.scores["accuracy"]
    low, high = report.ci.get("accuracy", (math.nan, math.nan))
    progress(1.0, "scored the links")
    return LinkageResult(
        accuracy=accuracy,
        balanced_accuracy=report.scores["balanced_accuracy"],
        ci={k: report.ci[k] for k in ("accuracy", "balanced_accuracy") if k in report.ci},
        chance=chance,
        risk=(accuracy - chance) / (1 - chance),
        risk_ci=((low - chance) / (1 - chance), (high - chance) / (1 - chance)),
        exact_link_rate=exact,
        n_recordings=len(truth),
        n_subjects=len(subjects),
    )


def _reflect(position: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Mirror positions outside ``[0, length)`` back into it (…, 2, 1, 0, 1, 2, …, edge not repeated)."""
    period = np.maximum(2 * (length - 1), 1)
    folded = np.mod(position, period)
    return np.where(length == 1, 0, np.where(folded < length, folded, period - folded))


def _jitter_change_points(labels: np.ndarray, starts: np.ndarray, jitter: int,
                          rng: np.random.Generator) -> np.ndarray:
    """Move every label change point by up to ``jitter`` samples, never past half the gap to a neighbour.

    Recording starts stay put; two neighbouring change points can each move at most half their
    gap, so no run disappears and the activity sequence is kept.
    """
    change = np.flatnonzero(np.diff(labels) != 0) + 1
    run_starts = np.union1d(starts, change)
    movable = ~np.isin(run_starts, starts)
    before = run_starts - np.concatenate([run_starts[:1], run_starts[:-1]])  # length of the run it ends
    after = np.diff(np.append(run_starts, len(labels)))  # length of the run it starts
    left = np.where(movable, np.minimum(jitter, (before - 1) // 2), 0)
    right = np.where(movable, np.minimum(jitter, (after - 1) // 2), 0)
    moved = np.append(run_starts + rng.integers(-left, right + 1), len(labels))
    return np.repeat(labels[run_starts], np.diff(moved)).astype(labels.dtype)


def coarsen_metadata(ds: SensorDataset, rng: np.random.Generator, *, quantum_s: float = 10.0,
                     jitter_s: float = 1.28) -> tuple[SensorDataset, np.ndarray]:
    """A copy of ``ds`` whose recording lengths and label change points no longer link it to its source.

    Each recording's length is rounded up to a multiple of ``quantum_s`` (at least one quantum),
    so every length in a bucket looks the same. The shortfall is padded with the recording's own
    samples mirrored at its ends, split between start and end at random, so change points also
    lose their offset from the start. Then every label change point moves by a uniform random
    amount of up to ``jitter_s``. Recording ids, order and other columns are kept, so the
    release's linkage still holds. Nothing is trimmed: recording ``i``'s original samples sit at
    offset ``lead[i]`` of its padded version, and :func:`strip_padding` recovers them, so a
    release can be judged sample for sample against its source while only the coarse version is
    published. Returns ``(coarse dataset, lead)``.

    Trade-off: a recording gains up to one quantum of time-reversed copies of its own samples,
    and labels within ``jitter_s`` of a change point may be wrong. With ``jitter_s`` at most half
    the window length used downstream (the default is half of the 2.56 s evaluation window),
    only windows that straddle a change point can change their majority label. What stays: the
    number and order of activities in each recording and their rough durations, so where
    subjects did different activities (SisFall: falls only by young adults) a floor above chance
    remains.

    Pass a generator seeded from the operating system (``np.random.default_rng()``), not the job
    seed: anyone who can recompute the draws can undo them.
    """
    if isinstance(quantum_s, bool) or not isinstance(quantum_s, (int, float)) or not (
            math.isfinite(quantum_s) and quantum_s * ds.sampling_rate >= 1):
        raise ParameterError("quantum_s", f"must be a finite number of seconds, at least one sample "
                                          f"({1 / ds.sampling_rate:g} s at {ds.sampling_rate:g} Hz), got {quantum_s!r}")
    if isinstance(jitter_s, bool) or not isinstance(jitter_s, (int, float)) or not (
            math.isfinite(jitter_s) and jitter_s >= 0):
        raise ParameterError("jitter_s", f"must be a finite number of seconds >= 0, got {jitter_s!r}")
    quantum = max(1, round(quantum_s * ds.sampling_rate))
    old_start = ds.recordings["start"].to_numpy(np.int64)
    old_len = ds.recordings["length"].to_numpy(np.int64)
    new_len = quantum * np.maximum(-(-old_len // quantum), 1)
    lead = rng.integers(0, new_len - old_len + 1)  # padded samples before the original start
    new_start = np.concatenate([[0], np.cumsum(new_len)[:-1]]).astype(np.int64)
    rec = np.repeat(np.arange(len(new_len)), new_len)
    offset = np.arange(int(new_len.sum())) - new_start[rec]
    source = old_start[rec] + _reflect(offset - lead[rec], old_len[rec])
    labels = _jitter_change_points(ds.labels[source], new_start, round(jitter_s * ds.sampling_rate), rng)
    recordings = ds.recordings.assign(start=new_start, length=new_len)
    return replace(ds, signals=ds.signals[source], labels=labels, recordings=recordings), lead


def strip_padding(ds: SensorDataset, lead: np.ndarray, lengths: np.ndarray) -> SensorDataset:
    """The original-length recordings inside a release padded by :func:`coarsen_metadata`.

    ``lead`` and ``lengths`` are per recording of ``ds`` (in its order): where the original
    samples start inside each padded recording and how many there are.
    """
    lead, lengths = np.asarray(lead, np.int64), np.asarray(lengths, np.int64)
    have = ds.recordings["length"].to_numpy(np.int64)
    if lead.shape != have.shape or lengths.shape != have.shape or (lead < 0).any() or (lead + lengths > have).any():
        raise DataError(f"the padding record does not fit the release {ds.name!r}: it must give, for each of its "
                        f"{len(have)} recordings, an offset and a length inside the recording")
    start = ds.recordings["start"].to_numpy(np.int64) + lead
    new_start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    rec = np.repeat(np.arange(len(lengths)), lengths)
    index = start[rec] + np.arange(int(lengths.sum())) - new_start[rec]
    recordings = ds.recordings.assign(start=new_start, length=lengths)
    return replace(ds, signals=ds.signals[index], labels=ds.labels[index], recordings=recordings)
