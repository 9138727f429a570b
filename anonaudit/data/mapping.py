"""Write the TOML mapping that describes an uploaded samples table (the app's upload form).

Users who upload a CSV/Parquet file pick its columns in a form instead of writing a mapping by
hand; this module turns those choices into the same ``mapping.toml`` the tabular loader reads
(see :mod:`anonaudit.data.loaders.tabular`), so an upload and a CLI import take one code path.
File names in the mapping are relative to the mapping file and are generated names, never the
names the user's files had.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from anonaudit.data.dataset import sampling_rate_problem
from anonaudit.data.inputs import column_list
from anonaudit.errors import ParameterError
from anonaudit.files import atomic_write


@dataclass
class ColumnChoice:
    """Which column holds what; empty optional roles are left out of the mapping."""

    subject: str
    channels: list[str]
    sampling_rate: float
    name: str
    recording: str | None = None
    activity: str | None = None
    time: str | None = None

    def check(self, columns: list[str]) -> None:
        """Every chosen column exists, no column plays two roles, the rate is plausible."""
        problem = sampling_rate_problem(self.sampling_rate)
        if problem is not None:
            raise ParameterError("sampling_rate", problem)
        if not self.channels:
            raise ParameterError("channels", "choose at least one signal column")
        roles = {"subject": [self.subject], "recording": [self.recording], "activity": [self.activity],
                 "time": [self.time], "channels": self.channels}
        seen: dict[str, str] = {}
        for role, names in roles.items():
            for col in names:
                if col is None:
                    continue
                if col not in columns:
                    raise ParameterError(role, f"column {col!r} is not in the file (it has {column_list(columns)})")
                if col in seen:
                    raise ParameterError(role, f"column {col!r} is already the {seen[col]} column")
                seen[col] = role


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def write_mapping(folder: Path, samples: str, choice: ColumnChoice, columns: list[str],
                  subjects: str | None = None) -> Path:
    """Write ``<random>.toml`` in ``folder`` next to ``samples`` (and ``subjects``); returns its path."""
    choice.check(columns)
    dataset = [f"name = {_toml_str(choice.name)}", f"sampling_rate = {float(choice.sampling_rate)!r}",
               f"samples = {_toml_str(samples)}"]
    if subjects is not None:
        dataset.append(f"subjects = {_toml_str(subjects)}")
    cols = [f"subject = {_toml_str(choice.subject)}"]
    cols += [f"{key} = {_toml_str(getattr(choice, key))}" for key in ("recording", "activity", "time")
             if getattr(choice, key) is not None]
    cols.append(f"channels = [{', '.join(_toml_str(c) for c in choice.channels)}]")
    lines = ["# written by the anonaudit app from the upload form", "[dataset]", *dataset, "", "[columns]", *cols]
    path = folder / f"{uuid.uuid4().hex}.toml"
    return atomic_write(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n", encoding="utf-8"))
