"""Every anonymisation method by name: build one from its configuration, or load a saved one."""

from __future__ import annotations

from pathlib import Path

from anonaudit.anonymise.autoencoders import AdversarialAutoencoder, Autoencoder
from anonaudit.anonymise.baselines import GaussianNoise, Identity
from anonaudit.anonymise.config import METHODS, AnonymiserConfig
from anonaudit.anonymise.donor import DonorMixing
from anonaudit.anonymise.dpsynth import PrivateSynthesis
from anonaudit.anonymise.gan import GAN
from anonaudit.anonymise.method import Method, read_state
from anonaudit.anonymise.synth import ActivitySynthesis
from anonaudit.errors import ParameterError

CLASSES: dict[str, type[Method]] = {name: cls for cls in (Identity, GaussianNoise, Autoencoder, AdversarialAutoencoder, GAN,
                                                          DonorMixing, ActivitySynthesis, PrivateSynthesis) for name in cls.methods}
assert set(CLASSES) == set(METHODS), "every method name needs exactly one class"


def build(config: AnonymiserConfig) -> Method:
    """An unfitted method of ``config.method``."""
    if config.method not in CLASSES:
        raise ParameterError("method", f"unknown method {config.method!r}; choose one of {list(METHODS)}")
    return CLASSES[config.method](config)


def load(path: str | Path) -> Method:
    """A method saved with ``save``, whatever its class."""
    state = read_state(path)
    return CLASSES[state["config"]["method"]].from_state(state)
