"""Tabular data for explanations: typed frames and the discretisation rules are written in.

R-LIME, Anchor and the paper's experiments all work on a *discretised* view of the data: each
feature becomes an integer code (a quantile bin for continuous columns, a category otherwise), a
predicate is "feature has the instance's code", and a rule is a conjunction of such predicates.
:class:`Discretiser` owns that mapping and its readable predicate strings; the loaders turn the
recidivism and Adult files (and any CSV with a target column) into a :class:`TabularData`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from anonaudit.data.inputs import brief, column_list, csv_header, csv_row, read_csv
from anonaudit.errors import DataError, ParameterError

ORDINAL, NOMINAL, BINNED = "ordinal", "nominal", "binned"


@dataclass
class TabularData:
    """Features as a typed frame (categories as pandas categoricals), labels as strings."""

    X: pd.DataFrame
    y: np.ndarray
    name: str = "data"

    @property
    def class_names(self) -> list[str]:
        return sorted(map(str, np.unique(self.y)))


@dataclass
class FeatureCoding:
    """How one feature becomes codes: ``kind`` decides how the sampler treats the codes."""

    name: str
    kind: str  # ORDINAL (ordered categories), NOMINAL (unordered, > 2 values) or BINNED (quantile bins)
    values: list[object] = field(default_factory=list)  # categories in code order (ORDINAL/NOMINAL)
    edges: np.ndarray = field(default_factory=lambda: np.empty(0))  # inner bin edges (BINNED)

    @property
    def n_values(self) -> int:
        return len(self.edges) + 1 if self.kind == BINNED else len(self.values)

    @property
    def decimals(self) -> int:
        """The fewest decimals (at least 2) at which neighbouring bin edges still differ, so that no printed
        interval is empty ("0.01 < x <= 0.01" at two decimals for edges 0.007 and 0.012)."""
        for d in range(2, 16):
            if (np.diff(np.round(self.edges, d)) > 0).all():
                return d
        return 16

    def predicate(self, code: int) -> str:
        """Readable predicate "feature has this code", in the style of the Anchor/LIME papers."""
        if self.kind != BINNED:
            return f"{self.name} = {self.values[code]}"
        e, d = self.edges, self.decimals
        if code == 0:
            return f"{self.name} <= {e[0]:.{d}f}"
        if code == len(e):
            return f"{self.name} > {e[-1]:.{d}f}"
        return f"{e[code - 1]:.{d}f} < {self.name} <= {e[code]:.{d}f}"


class Discretiser:
    """Quantile bins for continuous columns, categories as they are for the others.

    A numeric column with fewer than ``max_categories`` distinct values is a category (as in the
    Anchor/R-LIME code), ordered by value; a pandas categorical keeps its order if it is ordered;
    strings are categories in sorted order, nominal when there are more than two of them.
    """

    def __init__(self, n_bins: int = 4, max_categories: int = 20) -> None:
        if n_bins < 2:
            raise ParameterError("n_bins", f"must be >= 2, got {n_bins}")
        self.n_bins = n_bins
        self.max_categories = max_categories
        self.features: list[FeatureCoding] = []

    # ------------------------------------------------------------------ fit / transform
    def fit(self, X: pd.DataFrame) -> Discretiser:
        self.features = [self._fit_column(name, X[name]) for name in X.columns]
        return self

    def _fit_column(self, name: str, col: pd.Series) -> FeatureCoding:
        if isinstance(col.dtype, pd.CategoricalDtype):
            values = list(col.cat.categories)
            kind = ORDINAL if col.cat.ordered or len(values) <= 2 else NOMINAL
            return FeatureCoding(str(name), kind, values)
        if pd.api.types.is_bool_dtype(col):
            return FeatureCoding(str(name), ORDINAL, [False, True])
        if pd.api.types.is_numeric_dtype(col):
            if col.isna().any():
                raise DataError(f"{int(col.isna().sum())} missing values in a numeric column", column=str(name))
            unique = np.unique(col.to_numpy())
            if len(unique) < self.max_categories:
                return FeatureCoding(str(name), ORDINAL, unique.tolist())
            qs = np.percentile(col.to_numpy(float), np.linspace(0, 100, self.n_bins + 1)[1:-1])
            return FeatureCoding(str(name), BINNED, edges=np.unique(qs))
        values = sorted(col.astype(str).unique())
        return FeatureCoding(str(name), ORDINAL if len(values) <= 2 else NOMINAL, values)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def n_values(self) -> np.ndarray:
        return np.array([f.n_values for f in self.features])

    @property
    def nominal(self) -> np.ndarray:
        return np.array([f.kind == NOMINAL for f in self.features])

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Integer codes ``(n, m)``; unknown columns, missing columns and unseen categories are DataErrors."""
        self.check_columns(X)
        return np.column_stack([self._codes(f, X[f.name]) for f in self.features]).astype(np.int64)

    def check_columns(self, X: pd.DataFrame) -> None:
        missing = [n for n in self.names if n not in X.columns]
        if missing:
            raise DataError(f"column missing; expected columns {self.names}", column=missing[0])
        extra = [str(c) for c in X.columns if c not in self.names]
        if extra:
            raise DataError(f"unexpected column; expected columns {self.names}", column=extra[0])

    @staticmethod
    def _codes(f: FeatureCoding, col: pd.Series) -> np.ndarray:
        missing = np.flatnonzero(col.isna().to_numpy())
        if len(missing):
            raise DataError("missing value (every feature needs one)", column=f.name, row=int(missing[0]))
        if f.kind == BINNED:
            x = pd.to_numeric(col, errors="coerce").to_numpy(float)
            bad = np.flatnonzero(np.isnan(x))
            if len(bad):
                raise DataError(f"value {brief(col.iloc[bad[0]])} is not a number", column=f.name, row=int(bad[0]))
            return np.searchsorted(f.edges, x, side="left")
        lookup = {_key(v): i for i, v in enumerate(f.values)}
        keys = [_key(v) for v in col.tolist()]
        codes = np.fromiter((lookup.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        bad = np.flatnonzero(codes < 0)
        if len(bad):
            raise DataError(f"unseen category {brief(col.iloc[bad[0]])}; known: {brief(f.values)}", column=f.name,
                            row=int(bad[0]))
        return codes

    def predicates(self, features: Sequence[int], codes: np.ndarray) -> list[str]:
        return [self.features[j].predicate(int(codes[j])) for j in features]

    def values(self, row: pd.DataFrame) -> dict[str, str]:
        """One instance as people read it: its own values (numbers to six significant digits), not its bins."""
        first = row.iloc[0]
        return {f.name: _shown(first[f.name]) for f in self.features}


def _shown(value: object) -> str:
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        return f"{float(value):.6g}"
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    return str(value)


def _key(value: object) -> object:
    """Category lookup key: numbers by value (1 == 1.0), everything else by its string."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return str(value)


# ---------------------------------------------------------------------------- loaders
def load_csv(path: str | Path, target: str, *, drop: Sequence[str] = ()) -> TabularData:
    """Any CSV with a target column: strings become categories, numbers stay numeric.

    Every cell must hold a value (a rule's predicates need one for each feature): a missing one
    is an error naming its column and line, not a category "nan" or a later "unseen category".
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", file=path)
    csv_header(path)  # an empty file, a binary one or a repeated column name fails here, naming the file
    frame = read_csv(path, skipinitialspace=True, low_memory=False)  # one chunk: one type per column
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        raise DataError(f"target column not found; the file has {column_list(columns)}", file=path, column=target)
    unknown = [c for c in drop if c not in columns]
    if unknown:
        raise DataError("column to drop not found", file=path, column=unknown[0])
    if frame.empty:
        raise DataError("no data rows", file=path)
    frame = frame.drop(columns=list(drop))
    bad = frame.isna()
    numeric = frame.select_dtypes("number").columns
    bad[numeric] |= np.isinf(frame[numeric])
    if bad.to_numpy().any():
        i = int(np.argmax(bad.to_numpy().any(axis=1)))
        j = int(np.argmax(bad.to_numpy()[i]))
        what = "missing value" if pd.isna(frame.iat[i, j]) else "infinite value"
        raise DataError(f"{what} (every feature and the target need a finite one)", file=path,
                        column=str(frame.columns[j]), row=csv_row(i))
    y = frame[target].astype(str).str.strip().to_numpy()
    X = frame.drop(columns=[target])
    for name in X.columns:
        if not pd.api.types.is_numeric_dtype(X[name]) and not pd.api.types.is_bool_dtype(X[name]):
            X[name] = X[name].astype(str).str.strip().astype("category")
    return TabularData(X.reset_index(drop=True), y, path.stem)


RECIDIVISM_COLUMNS = {  # Data_1980.csv column -> name in the Anchor/R-LIME papers
    "WHITE": "Race", "ALCHY": "Alcohol", "JUNKY": "Junky", "SUPER": "Supervised Release",
    "MARRIED": "Married", "FELON": "Felony", "WORKREL": "WorkRelease", "PROPTY": "Crime against Property",
    "PERSON": "Crime against Person", "MALE": "Gender", "PRIORS": "Priors", "SCHOOL": "YearsSchool",
    "RULE": "PrisonViolations", "AGE": "Age", "TSERVD": "MonthsServed",
}
_BINARY_NAMES = {"Race": ["Black", "White"], "Married": ["No", "Married"], "Gender": ["Female", "Male"]}


def _ordered(codes: np.ndarray, names: Sequence[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=list(names), ordered=True)


def load_recidivism(path: str | Path) -> TabularData:
    """North Carolina 1980 recidivism with the Anchor/R-LIME paper's feature coding (15 features).

    Binary flags get names, prior offences and prison violations are binned as in the papers
    (UNKNOWN/NO/1 to 5/More than 5 and NO/1 to 5/More than 5), age is in years; years of school,
    age and months served stay continuous and are quartile-binned by the :class:`Discretiser`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", file=path)
    raw = pd.read_csv(path)
    missing = [c for c in [*RECIDIVISM_COLUMNS, "RECID"] if c not in raw.columns]
    if missing:
        raise DataError("column missing from the recidivism file", file=path, column=missing[0])
    X = pd.DataFrame(index=raw.index)
    for col, name in RECIDIVISM_COLUMNS.items():
        v = raw[col].to_numpy()
        if name in ("Priors", "PrisonViolations", "YearsSchool", "Age", "MonthsServed"):
            continue
        X[name] = _ordered(v.astype(int), _BINARY_NAMES.get(name, ["No", "Yes"]))
    X["Priors"] = _ordered(np.digitize(raw["PRIORS"], [-1, 0, 5], right=True),
                           ["UNKNOWN", "NO", "1 to 5", "More than 5"])
    X["YearsSchool"] = raw["SCHOOL"].astype(float)
    X["PrisonViolations"] = _ordered(np.digitize(raw["RULE"], [0, 5], right=True), ["NO", "1 to 5", "More than 5"])
    X["Age"] = (raw["AGE"] // 12).astype(float)
    X["MonthsServed"] = raw["TSERVD"].astype(float)
    y = np.where(raw["RECID"].to_numpy() == 1, "Re-arrested", "No more crimes")
    return TabularData(X[list(RECIDIVISM_COLUMNS.values())], y, "recidivism")


ADULT_COLUMNS = ["Age", "Workclass", "fnlwgt", "Education", "Education-Num", "Marital Status", "Occupation",
                 "Relationship", "Race", "Sex", "Capital Gain", "Capital Loss", "Hours per week", "Country",
                 "Income"]


def load_adult(folder: str | Path) -> TabularData:
    """UCI Adult (adult.data + adult.test) with the Anchor paper's 12 features.

    fnlwgt and Education-Num are dropped; capital gain/loss become None/Low/High (split at the
    median of the non-zero values); the rest is kept as published.
    """
    folder = Path(folder)
    frames = []
    for name, skip in (("adult.data", 0), ("adult.test", 1)):
        f = folder / name
        if not f.is_file():
            raise DataError("file not found", file=f)
        frames.append(pd.read_csv(f, header=None, names=ADULT_COLUMNS, skiprows=skip, skipinitialspace=True))
    raw = pd.concat(frames, ignore_index=True).dropna(subset=["Income"])
    y = raw["Income"].astype(str).str.rstrip(".").to_numpy()
    X = raw.drop(columns=["fnlwgt", "Education-Num", "Income"]).reset_index(drop=True)
    for col in ("Capital Gain", "Capital Loss"):
        v = X[col].to_numpy(float)
        cut = np.median(v[v > 0])
        X[col] = _ordered(np.where(v == 0, 0, np.where(v <= cut, 1, 2)), ["None", "Low", "High"])
    for col in ("Workclass", "Education", "Marital Status", "Occupation", "Relationship", "Race", "Sex", "Country"):
        X[col] = X[col].astype(str).astype("category")
    X["Age"] = X["Age"].astype(float)
    X["Hours per week"] = X["Hours per week"].astype(float)
    return TabularData(X, y, "adult")
