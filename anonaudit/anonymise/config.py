"""Parameters of every anonymisation method, declared once (each method reads the ones it uses)."""

from __future__ import annotations

from dataclasses import dataclass

from anonaudit.errors import ParameterError

GAN_METHODS = ("anon_ag", "anon_acg", "anon_dfi")  # gan.py
# baselines.py: none, noise; autoencoders.py: ae, aae; donor.py: same-activity donor mixing;
# synth.py: activity-conditioned synthesis; dpsynth.py: the same with subject-level differential privacy
METHODS = ("none", "ae", "noise", "aae", *GAN_METHODS, "donor", "synth", "dp_synth")
# What a frontier (and the main job's release stage) sweeps unless told otherwise: the methods whose privacy
# holds by construction (neither depends on whose recording a window replaces), synthesis first.
DEFAULT_FRONTIER = ("synth", "donor")
# Each method's privacy knob and the values a frontier sweeps by default (one point where training is costly).
KNOBS: dict[str, tuple[str | None, tuple[float, ...]]] = {
    "none": (None, ()), "ae": (None, ()), "noise": ("noise_sigma", (0.25, 0.5, 1.0)),
    "aae": ("aae_identity_weight", (1.0,)), "anon_ag": ("m", (0.9,)), "anon_acg": ("m", (0.9,)),
    "anon_dfi": ("dfi_cycle_weight", (1.0,)), "donor": ("k", (4, 8)),
    "synth": (None, ()), "dp_synth": ("epsilon", (10.0, 100.0, 1000.0)),
}
MAX_EPSILON = 1e4  # beyond it the accountant's noise search underflows, and nothing is protected anyway


@dataclass
class AnonymiserConfig:
    """Hyper-parameters; defaults train in minutes on 2 CPU cores for a few thousand windows."""

    method: str = "anon_acg"
    ae_epochs: int = 15
    epochs: int = 8
    batch_size: int = 64
    ae_lr: float = 1e-3
    g_lr: float = 2e-4
    d_lr: float = 1e-4
    latent: int = 32
    hidden: int = 256
    m: float = 0.9
    denoise_sigma: float = 0.05
    dfi_cycle_weight: float = 1.0
    rec_weight: float = 0.0
    noise_sigma: float = 0.5
    aae_identity_weight: float = 1.0
    aae_activity_weight: float = 1.0
    patience: int = 4
    k: int = 4  # donor: other subjects blended into every window
    epsilon: float = 10.0  # dp_synth: subject-level ε of the fitted model (δ = 1 / (10 · subjects))
    seed: int = 0

    @property
    def b(self) -> float:
        return 1.0 - self.m

    def check(self) -> None:
        if self.method not in METHODS:
            raise ParameterError("method", f"unknown method {self.method!r}; choose one of {list(METHODS)}")
        for name in ("ae_epochs", "epochs", "batch_size", "latent", "hidden"):
            if getattr(self, name) < 1:
                raise ParameterError(name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("ae_lr", "g_lr", "d_lr"):
            if not getattr(self, name) > 0:
                raise ParameterError(name, f"must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.m <= 1.0:
            raise ParameterError("m", f"must lie in [0, 1] (b = 1 − m), got {self.m}")
        for name in ("denoise_sigma", "dfi_cycle_weight", "rec_weight", "noise_sigma",
                     "aae_identity_weight", "aae_activity_weight"):
            if getattr(self, name) < 0:
                raise ParameterError(name, f"must be >= 0, got {getattr(self, name)}")
        if not 0 < self.epsilon <= MAX_EPSILON:
            raise ParameterError("epsilon", f"must lie in (0, {MAX_EPSILON:g}] (synth is the method without DP), "
                                            f"got {self.epsilon}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 2:
            raise ParameterError("k", f"donor mixing blends k >= 2 other subjects (k = 1 would release one real "
                                      f"person's signal as it is), got {self.k!r}")
