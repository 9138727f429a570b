"""What every anonymisation method shares, so the release, the judges and the jobs treat them alike.

A method is an estimator in scikit-learn style, built from :class:`AnonymiserConfig`: ``fit`` on
the training windows of known subjects, ``transform`` windows of the same shape into released
ones, ``save``/``load`` everything needed to anonymise later in one private file (it names the
training subjects). Each method lives in its own module (``baselines.py``: none and Gaussian
noise; ``autoencoders.py``: the autoencoder and the adversarial autoencoder, and the training
machinery the GANs share; ``gan.py``: Anon_AG, Anon_AcG, Anon_DFI; ``donor.py``: same-activity
donor mixing; ``synth.py``: activity-conditioned synthesis); ``methods.py`` builds and loads them
by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch

from anonaudit.anonymise.config import AnonymiserConfig
from anonaudit.anonymise.networks import Geometry
from anonaudit.errors import DataError, ParameterError
from anonaudit.private.dp import Privacy
from anonaudit.progress import ProgressFn, null_progress


@dataclass
class FitHistory:
    """Per-epoch losses of each phase and wall-clock training time."""

    ae: list[dict[str, float]] = field(default_factory=list)
    main: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def run_starts(activity: np.ndarray, recording: np.ndarray) -> np.ndarray:
    """True where a run of windows of one recording and one activity begins (windows in time order)."""
    return np.r_[True, (np.diff(recording) != 0) | (np.diff(activity) != 0)]


def read_state(path: str | Path) -> dict[str, Any]:
    """The saved state of a method, or one clear error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no trained anonymiser at this path", file=path)
    try:
        state: dict[str, Any] = torch.load(path, weights_only=False)
        AnonymiserConfig(**state["config"])
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets one clear message
        raise DataError(f"not a saved anonymiser ({type(exc).__name__})", file=path) from None
    return state


class Method:
    """Base of every method: its configuration, the vocabulary it was fitted on, and the input checks."""

    methods: ClassVar[tuple[str, ...]]  # the configuration's ``method`` values this class implements
    # True: ``fit`` and ``transform`` take ``recording`` codes of windows cut at half-window hops, in time order
    follows_recordings: ClassVar[bool] = False
    # True: a release draws this method's randomness from the OS CSPRNG, not the job seed (its draws say whose
    # data went where, and a seed recorded with the job would let anyone recompute them)
    secret_draws: ClassVar[bool] = False
    # what a method fitted with differential privacy spent (dpsynth.py); None: no formal guarantee
    privacy_: Privacy | None = None
    config: AnonymiserConfig
    channels_: list[str]
    subjects_: list[str]
    geometry_: Geometry
    history_: FitHistory

    def __init__(self, config: AnonymiserConfig | None = None) -> None:
        self.config = config or AnonymiserConfig()
        self.config.check()
        if self.config.method not in self.methods:
            raise ParameterError("method", f"{type(self).__name__} implements {list(self.methods)}, "
                                           f"not {self.config.method!r}")

    @property
    def uses_subject(self) -> bool:
        """Whether ``transform`` needs each window's subject code (so a release must know every subject)."""
        return False

    @property
    def draws_targets(self) -> bool:
        """Whether ``transform`` conditions every window on a target subject's code, drawn per recording at release
        (identity transfer moves the recording to it; Anon_AcG uses it instead of the true subject's)."""
        return False

    def fit(self, X: np.ndarray, subject: np.ndarray, activity: np.ndarray, *, subjects: Sequence[str],
            channels: Sequence[str], reid: Any = None, n_activities: int | None = None,
            checkpoint: str | Path | None = None, progress: ProgressFn = null_progress) -> "Method":
        """Learn from windows ``X`` (n, T, C) with subject and activity codes (see each method)."""
        raise NotImplementedError

    def transform(self, X: np.ndarray, subject: np.ndarray | None = None, target: np.ndarray | None = None,
                  seed: int = 0, batch_size: int = 1024, activity: np.ndarray | None = None,
                  recording: np.ndarray | None = None) -> np.ndarray:
        """Released windows in the original units, one per input window (see each method)."""
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        """What this method needs, beyond the configuration and vocabulary, to transform after loading."""
        raise NotImplementedError

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Everything needed to anonymise later, in one private file (it names the training subjects)."""
        path = Path(path)
        torch.save({"config": asdict(self.config), "channels": self.channels_, "subjects": self.subjects_,
                    "length": self.geometry_.length, **self._state()}, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """A method saved by :meth:`save` (``methods.load`` picks the class from the file)."""
        return cls.from_state(read_state(path))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """The method held by a state that :func:`read_state` read."""
        self = cls(AnonymiserConfig(**state["config"]))
        self.channels_, self.subjects_ = list(state["channels"]), list(state["subjects"])
        self.geometry_ = Geometry(state["length"], len(self.channels_))
        self._load_state(state)
        return self

    def _vocabulary(self, X: np.ndarray, subjects: Sequence[str], channels: Sequence[str]) -> None:
        """Check the training windows' shape and keep what a fitted method knows of its data."""
        if np.ndim(X) != 3 or len(X) < 2:
            raise DataError(f"need at least two windows shaped (n, time, channels), got {np.shape(X)}")
        self.channels_, self.subjects_ = list(channels), list(subjects)
        self.geometry_ = Geometry(X.shape[1], X.shape[2])

    def check_channels(self, channels: Sequence[str]) -> None:
        """Clear error for a dataset whose channels this method was not fitted on."""
        if not hasattr(self, "channels_"):
            raise ParameterError("anonymiser", "call fit() first or load a trained anonymiser")
        if list(channels) != self.channels_:
            unseen = [c for c in channels if c not in self.channels_]
            raise DataError(f"the anonymiser was trained on channels {self.channels_}; got {list(channels)}"
                            + (f" (unseen: {unseen})" if unseen else " (different order or subset)"))

    def check_input(self, X: np.ndarray, channels: Sequence[str] | None = None) -> None:
        """Clear errors for windows this method was not fitted on."""
        self.check_channels(channels if channels is not None else self.channels_)
        if X.ndim != 3 or X.shape[1:] != (self.geometry_.length, self.geometry_.channels):
            raise DataError(f"windows must be shaped (n, {self.geometry_.length}, {self.geometry_.channels}), got {X.shape}")

    def check_activity_input(self, X: np.ndarray, target: np.ndarray | None, activity: np.ndarray | None,
                             recording: np.ndarray | None, known: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """Input checks of a method that releases by activity alone: no target, an activity code per window among
        ``known`` (−1: unlabelled), recording codes (default: every window its own); returns both as int64."""
        self.check_input(X)
        method = self.config.method
        if target is not None:
            raise ParameterError("target", f"{method} releases by activity and transfers no identity; it takes no target")
        if activity is None:
            raise ParameterError("activity", f"{method} needs the activity of every window")
        activity = np.asarray(activity, np.int64)
        recording = np.arange(len(X)) if recording is None else np.asarray(recording, np.int64)
        if activity.shape != (len(X),) or recording.shape != (len(X),):
            raise DataError(f"{len(X)} windows but {activity.shape} activity and {recording.shape} recording codes")
        known = sorted(a for a in set(known) if a >= 0)
        unknown = sorted(set(np.unique(activity[activity >= 0]).tolist()) - set(known))
        if unknown:
            raise DataError(f"activity code {unknown[0]} has no {method} model: the method was fitted on activities {known}")
        return activity, recording

    def subject_codes(self, subjects: Sequence[str], param: str = "subject") -> np.ndarray:
        """Codes of subject ids in the training vocabulary; unknown ids are an error."""
        index = {sid: i for i, sid in enumerate(self.subjects_)}
        unknown = sorted({str(x) for x in subjects if str(x) not in index})
        if unknown:
            raise ParameterError(param, f"subjects {unknown[:5]} are unknown to this anonymiser "
                                        f"(trained on {len(self.subjects_)} subjects)")
        return np.array([index[str(x)] for x in subjects], dtype=np.int64)
