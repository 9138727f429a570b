"""Any classifier with ``predict_proba`` as a black box over discretised codes.

The explainers sample *codes*. A model trained on the codes themselves (the R-LIME/Anchor
setting) gets them as they are; a model trained on the raw columns (``input="raw"``) gets a raw
frame in which every category is its value and every quantile bin is a training value drawn
from that bin, so the model only ever sees values it could have seen. Rows sent to the model
are counted: that is the "black-box calls" figure of the explanations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anonaudit.data.inputs import brief
from anonaudit.errors import DataError, ParameterError
from anonaudit.explain.tabular import BINNED, Discretiser

INPUTS = ("codes", "raw")


def check_model(model: Any) -> Any:
    """The model itself, or a ParameterError when it cannot give class probabilities."""
    if not callable(getattr(model, "predict_proba", None)):
        raise ParameterError("model", f"{type(model).__name__} has no predict_proba; R-LIME, LIME and Anchor "
                                      "need a classifier that returns class probabilities")
    return model


def load_model(path: str | Path) -> Any:
    """A scikit-learn style model from a joblib or pickle file (only open files you trust).

    Unpickling a file that is not a pickle fails with whatever the bytes happen to decode to
    (IndexError, KeyError, UnpicklingError …), and those messages may quote the file, so any
    failure is reported as "not a joblib/pickle model", naming the file and the error type only.
    """
    import joblib

    path = Path(path)
    if not path.is_file():
        raise ParameterError("model", f"model file {path} not found")
    try:
        model = joblib.load(path)
    except ModuleNotFoundError as exc:
        raise ParameterError("model", f"{path} needs the Python module {exc.name!r}, which is not installed") from exc
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise ParameterError("model", f"{path} is not a joblib/pickle model file ({type(exc).__name__} "
                                      "while unpickling)") from exc
    return check_model(model)


class BlackBox:
    """``predict_proba`` on codes, counting rows (``calls``) and model invocations (``batches``)."""

    def __init__(self, model: Any, discretiser: Discretiser, train_X: pd.DataFrame | None = None,
                 input: str = "codes") -> None:
        if input not in INPUTS:
            raise ParameterError("model_input", f"must be one of {INPUTS}, got {input!r}")
        if input == "raw" and train_X is None:
            raise ParameterError("model_input", "'raw' needs the training frame to map bins back to values")
        self.model = check_model(model)
        self.discretiser = discretiser
        self.input = input
        self.calls = 0
        self.batches = 0
        self._model_columns: list[str] | None = None
        self.classes = [str(c) for c in getattr(model, "classes_", [])]
        # codes → one integer key (mixed radix): labels of a model on codes are cached by key
        n_values = discretiser.n_values
        exact = input == "codes" and float(np.prod(n_values.astype(float))) < 2.0**62
        self._radix = np.concatenate([[1], np.cumprod(n_values[:-1])]).astype(np.int64) if exact else None
        self.forget()
        if input == "raw":
            assert train_X is not None
            self._bins = {j: _bin_pool(train_X[f.name].to_numpy(float), f.edges)
                          for j, f in enumerate(discretiser.features) if f.kind == BINNED}
            self._dtypes = train_X.dtypes
            names = getattr(model, "feature_names_in_", None)
            self._model_columns = None if names is None else [str(c) for c in names]
            if self._model_columns is not None:
                missing = [c for c in self._model_columns if c not in discretiser.names]
                if missing:
                    raise DataError("the model needs this column but the data has none", column=missing[0])
        expected = getattr(model, "n_features_in_", None)
        if self._model_columns is None and expected is not None and expected != len(discretiser.names):
            raise ParameterError("model", f"expects {expected} features but the data has {len(discretiser.names)} "
                                          "(not counting the target)")

    def raw_frame(self, codes: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Raw values for codes: categories as they are, a random training value from each bin."""
        cols: dict[str, Any] = {}
        for j, f in enumerate(self.discretiser.features):
            c = codes[:, j]
            if f.kind == BINNED:
                values, start, count = self._bins[j]
                pick = start[c] + np.floor(rng.random(len(c)) * count[c]).astype(np.int64)
                cols[f.name] = values[np.minimum(pick, len(values) - 1)]
            else:
                cols[f.name] = np.asarray(f.values, dtype=object)[c]
        frame = pd.DataFrame(cols)
        return frame.astype(self._dtypes.to_dict())

    def proba(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` for codes ``(n, m)``: one model call."""
        self.calls += len(codes)
        self.batches += 1
        return self._predict(self.model_input(codes, rng))

    def proba_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities for raw rows (the instance itself, when the model takes raw values)."""
        self.calls += len(frame)
        self.batches += 1
        frame = frame[self.discretiser.names].astype(self._dtypes.to_dict())
        return self._predict(self._to_model(frame))

    def _predict(self, rows: Any) -> np.ndarray:
        """The model's class probabilities; a model that cannot take these rows is a ParameterError saying why."""
        try:
            return np.asarray(self.model.predict_proba(rows))
        except (ValueError, TypeError) as exc:
            text = ([str(n) for n, t in self._dtypes.items() if not pd.api.types.is_numeric_dtype(t)]
                    if self.input == "raw" and self._model_columns is None else [])
            if text:
                raise ParameterError("model", f"has no feature names, so it takes the features by position, as "
                                              f"numbers, but column {text[0]!r} holds text: use a model fitted on a "
                                              "DataFrame with these column names (e.g. a Pipeline that encodes the "
                                              "text), one on numeric features only, or one trained here (forest, "
                                              "logreg, lda, knn)") from exc
            raise ParameterError("model", f"cannot predict on the data's features ({type(exc).__name__}: "
                                          f"{brief(str(exc))})") from exc

    def model_input(self, codes: np.ndarray, rng: np.random.Generator) -> Any:
        if self.input == "codes":
            return codes
        return self._to_model(self.raw_frame(codes, rng))

    def _to_model(self, frame: pd.DataFrame) -> Any:
        if self._model_columns is not None:  # the model names its columns: give it those, in its order
            return frame[self._model_columns]
        if all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
            return frame.to_numpy(float)
        return frame

    def labels(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Predicted class per row of codes; a model on codes is asked only about rows it has not seen."""
        if self._radix is None:
            return np.argmax(self.proba(codes, rng), axis=1)
        keys = codes @ self._radix
        uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        pos = np.searchsorted(self._keys, uniq)
        hit = pos < len(self._keys)
        hit[hit] = self._keys[pos[hit]] == uniq[hit]
        labels = np.empty(len(uniq), dtype=np.int64)
        labels[hit] = self._labels[pos[hit]]
        new = ~hit
        if new.any():
            labels[new] = np.argmax(self.proba(codes[first[new]], rng), axis=1)
            self._keys = np.insert(self._keys, pos[new], uniq[new])
            self._labels = np.insert(self._labels, pos[new], labels[new])
        return labels[inverse.ravel()]

    def forget(self) -> None:
        """Empty the label cache (each explanation counts the model rows it needed itself)."""
        self._keys = np.empty(0, dtype=np.int64)
        self._labels = np.empty(0, dtype=np.int64)


def _bin_pool(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted training values and, per bin, where its values start and how many there are."""
    values = np.sort(values)
    bounds = np.searchsorted(values, edges, side="right")
    start = np.concatenate([[0], bounds])
    count = np.maximum(np.diff(np.concatenate([start, [len(values)]])), 1)
    return values, start, count
