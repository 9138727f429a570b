"""Hostile inputs (issue 18): every malformed file, mapping or parameter ends in one clear error.

(a) replays the probes that found holes, one parametrised case each, plus the other malformed
inputs found on the way; (b) generates malformed CSV text, damaged gzip and Parquet bytes,
broken mappings and out-of-range parameters with hypothesis. A rejected input must raise an
:class:`AnonauditError` whose one-line message names what is wrong (file, column, row or
parameter), quotes no more of the file than one cell, and leaves the store as it was (no
registered dataset, no file under the datasets folder). Imports go through ``api.import_dataset``,
the path the CLI and the worker take. Tiny data is made here; nothing reads ``../shared``.

Every distinct input tried (the SHA-256 of its bytes, mapping and parameters) is added to
``TRIED``; the module's fixture prints the count when the module finishes.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import itertools
import json
import math
import os
import time
import tomllib
import tracemalloc
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestClassifier
from streamlit.testing.v1 import AppTest

from anonaudit import api
from anonaudit.data.dataset import MAX_SAMPLING_RATE, MIN_SAMPLING_RATE
from anonaudit.data.loaders import FORMATS, load_dataset
from anonaudit.data.mapping import ColumnChoice
from anonaudit.data.resample import resample
from anonaudit.errors import AnonauditError, DataError, ParameterError
from anonaudit.settings import get_settings
from anonaudit.store import datasets as dataset_store
from anonaudit.store import uploads
from anonaudit.store.db import dispose_engines
from factories import tiny_dataset

TRIED: set[str] = set()
HOSTILE = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow])
PASSWD = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
MAPPING = ('[dataset]\nsampling_rate = 10.0\nsamples = "{samples}"\n'
           '[columns]\nsubject = "subject"\nchannels = ["acc_*"]\n')
_names = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def store(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    """One store (SQLite) for the module, so that hypothesis examples can share it; reports the count."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANONAUDIT_HOME", str(home))
        patch.setenv("ANONAUDIT_REPORTS", str(home / "reports"))
        patch.setenv("ANONAUDIT_DATABASE_URL", f"sqlite:///{home / 'anonaudit.db'}")
        yield home
        dispose_engines()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
            reporter.write_line(f"\ntest_hostile_inputs: {len(TRIED)} distinct hostile inputs tried")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inputs")


# ---------------------------------------------------------------------------- checking
def tried(*parts: object) -> None:
    """Count one input (its files, mapping and parameters)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else repr(part).encode())
        digest.update(b"\0")
    TRIED.add(digest.hexdigest())


def stored() -> tuple[list[str], list[str]]:
    """Registered dataset names and every path under the datasets folder (temporary ones included)."""
    folder = get_settings().datasets_dir
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []
    return sorted(d["name"] for d in dataset_store.list_datasets()), files


def rejected(action: Callable[[], object], *, says: Sequence[str], source: bytes = b"",
             hidden: Sequence[str] = ()) -> AnonauditError:
    """``action`` must fail with an AnonauditError saying ``says``, quote no line of ``source``, store nothing."""
    before = stored()
    with pytest.raises(AnonauditError) as info:
        action()
    message = str(info.value)
    assert message and "\n" not in message, message
    assert "internal error" not in message and "Traceback" not in message, message
    for text in says:
        assert text in message, f"{text!r} not in {message!r}"
    lines = [line.strip() for line in source.decode("utf-8", "replace").splitlines()]
    for text in [*hidden, *(line for line in lines if len(line) >= 20 and "," in line)]:
        assert text not in message, f"the message quotes {text!r}: {message!r}"
    assert stored() == before, "a rejected input left something in the store"
    return info.value


def folder(work: Path) -> Path:
    path = work / uuid.uuid4().hex[:12]
    path.mkdir()
    return path


def write_input(root: Path, samples: bytes, *, name: str = "samples.csv", mapping: str | bytes | None = None) -> Path:
    """A samples file and its mapping in ``root``; returns the mapping."""
    (root / name).write_bytes(samples)
    text = MAPPING.format(samples=name) if mapping is None else mapping
    (root / "mapping.toml").write_bytes(text if isinstance(text, bytes) else text.encode())
    return root / "mapping.toml"


def importing(mapping: Path, **options: Any) -> Callable[[], object]:
    return lambda: api.import_dataset(mapping, name=f"h{next(_names)}", **options)


def import_rejected(work: Path, samples: bytes, says: Sequence[str], *, name: str = "samples.csv",
                    mapping: str | bytes | None = None, hidden: Sequence[str] = ()) -> AnonauditError:
    """Import ``samples`` (with ``mapping``) through the API; it must be rejected (see :func:`rejected`)."""
    path = write_input(folder(work), samples, name=name, mapping=mapping)
    tried(samples, name, path.read_bytes())
    return rejected(importing(path), says=says, source=samples, hidden=hidden)


def csv_bytes(rows: Sequence[Sequence[str]], header: str = "subject,acc_x,acc_y") -> bytes:
    return ("\n".join([header, *(",".join(r) for r in rows)]) + "\n").encode()


GOOD_ROWS = [["a", "1.0", "2.0"], ["a", "1.5", "2.5"], ["b", "0.5", "-1.0"]]


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


GOOD_FRAME = pd.DataFrame({"subject": ["a", "a", "b"], "acc_x": [1.0, 1.5, 0.5], "acc_y": [2.0, 2.5, -1.0]})


# ---------------------------------------------------------------------------- (a) the probes
SMALL_CAP = 2**20  # the cap on decompressed bytes the probes set


def _bomb() -> bytes:
    """4 MiB of CSV text in a few kilobytes of gzip (over the cap the tests set: :data:`SMALL_CAP`)."""
    return gzip.compress(b"subject,acc_x,acc_y\n" + b"a,0,0\n" * (4 * SMALL_CAP // 6), mtime=0)


def _explain_csv(root: Path, missing: bool = False) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.integers(18, 80, 40), "sex": rng.choice(["Male", "Female"], 40),
                          "hours": rng.normal(40, 5, 40).round(1)})
    frame["y"] = np.where(frame["age"] > 40, "old", "young")
    if missing:
        frame.loc[1, "sex"] = None
    frame.to_csv(root / "people.csv", index=False)
    return root / "people.csv"


def _explaining(data: Path, model: Path | str = "forest") -> Callable[[], object]:
    return lambda: api.run("explain", {"data": str(data), "target": "y", "model": str(model), "baselines": False})


def probe_rate_huge(work: Path) -> None:
    import_rejected(work, csv_bytes(GOOD_ROWS), ["mapping.toml", "[dataset] sampling_rate", "0.1", "100000"],
                           mapping=MAPPING.format(samples="samples.csv").replace("10.0", "1e300"))


def probe_rate_tiny(work: Path) -> None:
    import_rejected(work, csv_bytes(GOOD_ROWS), ["mapping.toml", "[dataset] sampling_rate", "0.1", "100000"],
                           mapping=MAPPING.format(samples="samples.csv").replace("10.0", "1e-300"))


def probe_bool_channel(work: Path) -> None:
    rows = [[*r, flag] for r, flag in zip(GOOD_ROWS, ["True", "False", "True"])]
    import_rejected(work, csv_bytes(rows, "subject,acc_x,acc_y,acc_flag"),
                           ["samples.csv", "'acc_flag'", "row 2", "not a number"])


def probe_server_file(work: Path) -> None:
    """A server path naming a file that is no table: the error names it and quotes none of it."""
    (work / "passwd").write_bytes(PASSWD)
    tried(PASSWD, "passwd")
    for fmt in ("auto", "hapt", "tabular"):
        rejected(importing(work / "passwd", format=fmt), says=["passwd"], source=PASSWD,
                 hidden=["root:x:0:0", "/bin/bash", "daemon"])


def probe_truncated_parquet(work: Path) -> None:
    good = parquet_bytes(GOOD_FRAME)
    import_rejected(work, good[: len(good) // 2], ["samples.parquet", "Parquet"], name="samples.parquet")


def probe_corrupt_parquet(work: Path) -> None:
    good = bytearray(parquet_bytes(GOOD_FRAME))
    good[-6] ^= 0xFF  # the footer length
    import_rejected(work, bytes(good), ["samples.parquet", "Parquet"], name="samples.parquet")


def probe_channel_matches_nothing(work: Path) -> None:
    mapping = MAPPING.format(samples="samples.csv").replace('"acc_*"', '"X-Axis"')
    import_rejected(work, csv_bytes(GOOD_ROWS), ["'X-Axis' matches no column", "'acc_x'", "'acc_y'"],
                           mapping=mapping)


def probe_channel_matches_nothing_wide(work: Path) -> None:
    header = ",".join(["subject", *(f"column_number_{i}" for i in range(60))])
    rows = [["a", *["1"] * 60]]
    mapping = MAPPING.format(samples="samples.csv").replace('"acc_*"', '"X-Axis"')
    err = import_rejected(work, csv_bytes(rows, header), ["'X-Axis' matches no column", "and 41 more"], mapping=mapping)
    assert len(str(err)) < 1000


def probe_gzip_bomb_upload(work: Path) -> None:
    bomb = _bomb()
    tried(bomb, "upload")
    rejected(lambda: uploads.save_upload(bomb, "bomb.csv.gz", (".csv.gz",)),
                    says=["bomb.csv.gz", "decompresses to more than"])


def probe_gzip_bomb_import(work: Path) -> None:
    import_rejected(work, _bomb(), ["samples.csv.gz", "decompresses to more than"], name="samples.csv.gz",
                           mapping=MAPPING.format(samples="samples.csv.gz"))


def probe_delete_outside_uploads(work: Path) -> None:
    victim = work / "precious.csv"
    victim.write_bytes(b"keep me")
    tried(str(victim), "delete")
    rejected(lambda: uploads.delete_upload(uploads.uploads_dir() / ".." / victim.name), says=["'path'"])
    rejected(lambda: uploads.delete_upload(victim), says=["'path'", "not an upload"])
    assert victim.read_bytes() == b"keep me"


def probe_model_not_a_pickle(work: Path) -> None:
    (work / "passwd").write_bytes(PASSWD)
    tried(PASSWD, "model")
    rejected(_explaining(_explain_csv(work), work / "passwd"),
                    says=["'model'", "passwd", "not a joblib/pickle model"], source=PASSWD, hidden=["root:x", "daemon"])


def probe_model_without_names_on_text(work: Path) -> None:
    data = _explain_csv(work)
    frame = pd.read_csv(data)
    model = RandomForestClassifier(3, random_state=0).fit(
        np.column_stack([frame["age"], frame["sex"] == "Male", frame["hours"]]), frame["y"])
    joblib.dump(model, work / "unnamed.joblib")
    tried(data.read_bytes(), "unnamed model")
    rejected(_explaining(data, work / "unnamed.joblib"),
                    says=["'model'", "no feature names", "'sex' holds text", "trained here"],
                    hidden=["could not convert"])


def probe_missing_category(work: Path) -> None:
    data = _explain_csv(folder(work), missing=True)
    tried(data.read_bytes(), "missing category")
    rejected(_explaining(data), says=["people.csv", "column 'sex'", "row 3", "missing value"],
                    hidden=["nan", "unseen category"])


PROBES = [probe_rate_huge, probe_rate_tiny, probe_bool_channel, probe_server_file,
          probe_truncated_parquet, probe_corrupt_parquet, probe_channel_matches_nothing,
          probe_channel_matches_nothing_wide, probe_gzip_bomb_upload, probe_gzip_bomb_import,
          probe_delete_outside_uploads, probe_model_not_a_pickle, probe_model_without_names_on_text,
          probe_missing_category]
@pytest.mark.parametrize("probe", PROBES, ids=[p.__name__.removeprefix("probe_") for p in PROBES])
def test_probe(probe: Callable[[Path], None], work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from anonaudit.data import inputs

    monkeypatch.setattr(inputs, "MAX_TEXT_BYTES", SMALL_CAP)
    probe(folder(work))


def test_gzip_bomb_is_stopped_without_decompressing_it_into_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from anonaudit.data import inputs

    monkeypatch.setattr(inputs, "MAX_TEXT_BYTES", SMALL_CAP)
    bomb = gzip.compress(b"\0" * (64 * SMALL_CAP), mtime=0)
    tried(bomb, "memory")
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="decompresses to more than"):
            uploads.save_upload(bomb, "zeros.csv.gz", (".csv.gz",))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * SMALL_CAP, f"{peak / 2**20:.1f} MiB held while checking a 64 MiB bomb"


def test_uploads_older_than_a_day_go_when_a_new_one_is_saved() -> None:
    old = uploads.save_upload(b"a,b\n1,2\n", "old.csv", (".csv",))
    fresh = uploads.save_upload(b"a,b\n3,4\n", "fresh.csv", (".csv",))
    leftover = uploads.uploads_dir() / "x.csv.tmp-0000"  # an interrupted write
    leftover.write_bytes(b"half")
    day_and_more = time.time() - uploads.UPLOAD_MAX_AGE_S - 60
    for path in (old, leftover):
        os.utime(path, (day_and_more, day_and_more))
    new = uploads.save_upload(b"a,b\n5,6\n", "new.csv", (".csv",))
    assert not old.exists() and not leftover.exists()
    assert fresh.exists() and new.exists()
    uploads.delete_upload(new)
    assert not new.exists()


def _datasets_page_with(name: str, data: bytes) -> AppTest:
    page = Path(__file__).resolve().parents[1] / "app" / "views" / "0_Datasets.py"
    at = AppTest.from_file(str(page), default_timeout=60).run()
    assert not at.exception, at.exception
    at.file_uploader[0].set_value((name, data, "text/csv")).run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize(("name", "data", "says"), [
    ("one_column.csv", b"only\n1\n2\n", "needs a header row"),
    ("binary.csv", b"subject,acc_x\n\xff\xfe\x00,1\n", "binary.csv"),
    ("broken.parquet", parquet_bytes(GOOD_FRAME)[:100], "broken.parquet"),
])
def test_the_datasets_page_deletes_a_rejected_upload(name: str, data: bytes, says: str) -> None:
    before = set(uploads.uploads_dir().iterdir()) if uploads.uploads_dir().exists() else set()
    tried(data, name, "page")
    at = _datasets_page_with(name, data)
    assert any(says in e.value for e in at.error), [e.value for e in at.error]
    assert set(uploads.uploads_dir().iterdir()) == before


# ---------------------------------------------------------------------------- (a) other malformed inputs
def _stored_dataset(work: Path) -> Path:
    """A dataset directory as the store writes it (the ``anonaudit`` import format)."""
    path = folder(work) / "saved"
    load_dataset(write_input(folder(work), csv_bytes(GOOD_ROWS))).save(path)
    return path


SAMPLES_CASES = {  # name: (samples bytes, words the message must hold)
    "empty file": (b"", ["samples.csv", "empty file"]),
    "header only": (b"subject,acc_x,acc_y\n", ["samples.csv", "no data rows"]),
    "text in a channel": (csv_bytes([GOOD_ROWS[0], ["a", "1.5", "walking"]]), ["'acc_y'", "row 3", "'walking'"]),
    "blank first line": (b"\nsubject,acc_x,acc_y\na,1,2\n", ["row 1", "header must be the first line"]),
    "duplicate column": (csv_bytes(GOOD_ROWS, "subject,acc_x,acc_x"), ["'acc_x'", "row 1", "twice"]),
    "NaN in a channel": (csv_bytes([GOOD_ROWS[0], ["a", "NaN", "1"]]), ["'acc_x'", "row 3", "non-finite"]),
    "empty channel cell": (csv_bytes([GOOD_ROWS[0], ["a", "1", ""]]), ["'acc_y'", "row 3", "non-finite"]),
    "inf in a channel": (csv_bytes([GOOD_ROWS[0], ["a", "-inf", "1"]]), ["'acc_x'", "row 3", "non-finite"]),
    "beyond float32": (csv_bytes([GOOD_ROWS[0], ["a", "1e39", "1"]]), ["'acc_x'", "row 3", "too large"]),
    "not UTF-8": (csv_bytes(GOOD_ROWS) + b"b,\xff\xfe,1\n", ["row 5", "not UTF-8"]),
    "blank line inside": (csv_bytes(GOOD_ROWS).replace(b"\na,1.5", b"\n\na,1.5"), ["row 3", "missing subject"]),
    "extra field, first row": (csv_bytes([["a", "1", "5", "2"], *GOOD_ROWS]), ["row 2", "more fields"]),
    "decimal comma later": (csv_bytes([*GOOD_ROWS, ["b", "1", "5", "2"]]), ["row 5", "4 fields", "3 names"]),
    "short row": (csv_bytes([*GOOD_ROWS, ["b", "1"]]), ["'acc_y'", "row 5", "non-finite"]),
    "unterminated quote": (csv_bytes([*GOOD_ROWS, ["b", '"1', "2"]]), ["samples.csv", "malformed CSV"]),
    "missing subject": (csv_bytes([GOOD_ROWS[0], ["", "1", "2"]]), ["'subject'", "row 3", "missing subject"]),
    "non-contiguous recording": (csv_bytes([*GOOD_ROWS, ["a", "1", "2"]]), ["row 5", "not contiguous"]),
    "no line break": (b"subject," + b"x" * (2**20 + 10), ["row 1", "longer than 1024 KiB"]),
    "no subject column": (csv_bytes(GOOD_ROWS, "person,acc_x,acc_y"), ["'subject'", "missing column", "'person'"]),
}


@pytest.mark.parametrize("case", list(SAMPLES_CASES))
def test_malformed_samples(case: str, work: Path) -> None:
    samples, says = SAMPLES_CASES[case]
    import_rejected(work, samples, says)


def test_more_activities_than_label_codes(work: Path) -> None:
    """Activity codes are int16: a column with more distinct values would wrap around silently."""
    samples = b"subject,act,acc_x\n" + b"".join(b"a,%d,1\n" % i for i in range(32768))
    mapping = MAPPING.format(samples="samples.csv").replace('subject = "subject"',
                                                           'subject = "subject"\nactivity = "act"')
    import_rejected(work, samples, ["'act'", "32768 distinct activities"], mapping=mapping)


def test_malformed_time_column(work: Path) -> None:
    mapping = MAPPING.format(samples="samples.csv").replace('subject = "subject"', 'subject = "subject"\ntime = "t"')
    for times, says in ((["0.0", "0.0", "0.0"], ["'t'", "row 3", "time step of 0 s"]),
                        (["0.0", "-0.1", "0.0"], ["'t'", "row 3", "time step of -0.1 s"]),
                        (["0.0", "x", "0.0"], ["'t'", "row 3", "not a number: 'x'"])):
        rows = [[*r, t] for r, t in zip(GOOD_ROWS, times)]
        import_rejected(work, csv_bytes(rows, "subject,acc_x,acc_y,t"), says, mapping=mapping)


def test_malformed_parquet_columns(work: Path) -> None:
    for frame, says in ((GOOD_FRAME.assign(acc_y=["1", "2", "x"]), ["'acc_y'", "row 1", "not numbers"]),
                        (GOOD_FRAME.assign(acc_y=[True, False, True]), ["'acc_y'", "True/False"]),
                        (GOOD_FRAME.assign(acc_y=pd.array([1, None, 2], dtype="Int64")), ["'acc_y'", "row 2"])):
        import_rejected(work, parquet_bytes(frame), says, name="samples.parquet",
                        mapping=MAPPING.format(samples="samples.parquet"))


MAPPING_CASES = {  # name: (edit of the valid mapping text, words the message must hold)
    "TOML syntax": (lambda m: m.replace("[columns]", "[columns"), ["mapping.toml", "invalid TOML"]),
    "not UTF-8": (lambda m: m.replace("[columns]", "[columns]\n# \udcff"), ["mapping.toml", "not UTF-8"]),
    "rate as text": (lambda m: m.replace("10.0", '"10 Hz"'), ["'dataset.sampling_rate'", "wrong type str"]),
    "rate as bool": (lambda m: m.replace("10.0", "true"), ["'dataset.sampling_rate'", "wrong type bool"]),
    "rate zero": (lambda m: m.replace("10.0", "0"), ["[dataset] sampling_rate", "got 0"]),
    "rate negative": (lambda m: m.replace("10.0", "-50.0"), ["[dataset] sampling_rate", "got -50.0"]),
    "rate infinite": (lambda m: m.replace("10.0", "inf"), ["[dataset] sampling_rate", "got inf"]),
    "rate 2**70": (lambda m: m.replace("10.0", str(2**70)), ["[dataset] sampling_rate", "100000"]),
    "channels as text": (lambda m: m.replace('["acc_*"]', '"acc_*"'), ["'columns.channels'", "wrong type str"]),
    "channels of numbers": (lambda m: m.replace('["acc_*"]', "[1, 2]"), ["'columns.channels'", "non-empty list"]),
    "channels empty": (lambda m: m.replace('["acc_*"]', "[]"), ["'columns.channels'", "non-empty list"]),
    "channel is the subject": (lambda m: m.replace('["acc_*"]', '["subject"]'), ["'subject'", "already the subject"]),
    "unknown key": (lambda m: m.replace("[columns]", "[columns]\nlabel = \"x\""), ["'columns.label'", "unknown key"]),
    "unknown section": (lambda m: m + "[extra]\nx = 1\n", ["'extra'", "unknown section"]),
    "section as value": (lambda m: m + "units = 3\n", ["'columns.units'", "unknown key"]),
    "missing section": (lambda m: m.split("[columns]")[0], ["'columns'", "missing required section"]),
    "empty samples": (lambda m: m.replace('"samples.csv"', '""'), ["'dataset.samples'", "must not be empty"]),
    "NUL in samples": (lambda m: m.replace('"samples.csv"', '"sam\\u0000ples.csv"'), ["'dataset.samples'", "NUL"]),
    "samples elsewhere": (lambda m: m.replace('"samples.csv"', '"../../../../etc/passwd"'),
                          ["'dataset.samples'", "unsupported file type"]),
    "samples missing": (lambda m: m.replace('"samples.csv"', '"gone.csv"'), ["'dataset.samples'", "not found"]),
    "group matches nothing": (lambda m: m + '[channel_groups]\nimu = ["gyro_*"]\n',
                              ["'channel_groups.imu'", "'gyro_*' matches no column", "'acc_x'"]),
    "unit not text": (lambda m: m + "[units]\nacc_x = 9.81\n", ["'units.acc_x'", "expected a string"]),
}


@pytest.mark.parametrize("case", list(MAPPING_CASES))
def test_malformed_mapping(case: str, work: Path) -> None:
    edit, says = MAPPING_CASES[case]
    text = edit(MAPPING.format(samples="samples.csv")).encode("utf-8", "surrogateescape")
    import_rejected(work, csv_bytes(GOOD_ROWS), says, mapping=text)


def test_damaged_stored_dataset(work: Path) -> None:
    """The ``anonaudit`` format (a dataset directory) is user input too when imported."""
    for damage, says in ((lambda p: (p / "dataset.json").write_bytes(b"{not json"), ["dataset.json", "not valid JSON"]),
                         (lambda p: (p / "dataset.json").write_text(json.dumps({"format_version": 1})),
                          ["dataset.json", "'name'"]),
                         (lambda p: (p / "samples.parquet").write_bytes(b"PAR1"), ["samples.parquet", "Parquet"]),
                         (lambda p: (p / "subjects.parquet").write_bytes(b"x" * 64), ["subjects.parquet", "Parquet"])):
        path = _stored_dataset(work)
        damage(path)
        tried(*(f.read_bytes() for f in sorted(path.iterdir())))
        rejected(importing(path, format="anonaudit"), says=says)


def test_malformed_explain_csv(work: Path) -> None:
    for data, says in ((b"", ["empty file"]), (b"age,y\n", ["no data rows"]), (b"age,age,y\n1,2,a\n", ["twice"]),
                       (b"age,y\n1,a\n\xff,b\n", ["row 3", "not UTF-8"]), (b"age,y\n1,2,a\n", ["row 2", "more fields"]),
                       (b"age,y\n1,a\ninf,b\n", ["'age'", "row 3", "infinite"]),
                       (b"age,y\n1,a\n2,\n", ["'y'", "row 3", "missing value"]),
                       (b"age,label\n1,a\n", ["'y'", "target column not found", "'label'"])):
        path = folder(work) / "table.csv"
        path.write_bytes(data)
        tried(data, "explain")
        rejected(_explaining(path), says=["table.csv", *says], source=data)


# ---------------------------------------------------------------------------- (b) generated CSV text
def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


NA_WORDS = ["", "nan", "NaN", "NA", "N/A", "null", "inf", "-inf", "Infinity", "1e39", "-1e39", "1e400"]
GARBAGE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=',"\r\n\x00'), min_size=1,
                  max_size=12).map(lambda t: t if not _is_float(t) and t.strip() not in NA_WORDS else f"{t}?")
DEFECTS = ("cell", "empty_cell", "subject_missing", "extra_field", "short_row", "blank_line", "non_utf8",
           "duplicate_header", "missing_channel", "unterminated_quote", "non_contiguous", "garbage_file")


@st.composite
def hostile_csv(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """A small samples file with exactly one defect, and the words the error must hold."""
    n = draw(st.integers(2, 6))
    number = st.floats(-1e6, 1e6, allow_nan=False, width=32).map(repr)
    subjects = sorted(draw(st.lists(st.sampled_from("abc"), min_size=n, max_size=n)))
    rows = [[s, draw(number), draw(number)] for s in subjects]
    defect = draw(st.sampled_from(DEFECTS))
    i = draw(st.integers(0, n - 1))
    j = draw(st.integers(1, 2))
    column = ("acc_x", "acc_y")[j - 1]
    if defect == "cell":
        rows[i][j] = draw(st.one_of(GARBAGE, st.sampled_from(["True", "FALSE", "true", "0x1F", "1_000", "--1"])))
        return csv_bytes(rows), [f"'{column}'", f"row {i + 2}"]
    if defect == "empty_cell":
        rows[i][j] = draw(st.sampled_from(NA_WORDS))
        return csv_bytes(rows), [f"'{column}'", f"row {i + 2}", "non-finite"]
    if defect == "subject_missing":
        rows[i][0] = ""
        return csv_bytes(rows), ["'subject'", f"row {i + 2}", "missing subject"]
    if defect == "extra_field":
        rows[i].append(draw(number))
        return csv_bytes(rows), [f"row {i + 2}", "fields"]
    if defect == "short_row":
        rows[i].pop()
        return csv_bytes(rows), ["'acc_y'", f"row {i + 2}"]
    if defect == "blank_line":
        rows.insert(i, [])
        return csv_bytes(rows), [f"row {i + 2}", "missing subject"]
    if defect == "non_utf8":
        data = csv_bytes(rows).split(b"\n")
        data[i + 1] = data[i + 1].replace(b",", b"," + draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82"])), 1)
        return b"\n".join(data), [f"row {i + 2}", "not UTF-8"]
    if defect == "duplicate_header":
        return csv_bytes(rows, f"subject,{column},{column}"), [f"'{column}'", "row 1", "twice"]
    if defect == "missing_channel":
        return csv_bytes(rows, "subject,gyro_x,gyro_y"), ["'acc_*' matches no column", "'gyro_x'"]
    if defect == "unterminated_quote":
        rows[i][j] = '"' + rows[i][j]
        return csv_bytes(rows), ["samples.csv", "malformed CSV"]
    if defect == "non_contiguous":
        rows.append([rows[0][0] if rows[-1][0] != rows[0][0] else "z", "1", "2"])
        rows.append([rows[0][0], "1", "2"])
        return csv_bytes(rows), ["not contiguous"]
    data = draw(st.binary(max_size=300))
    assume(b"acc_" not in data)
    return data, ["samples.csv"]


@HOSTILE
@given(case=hostile_csv())
def test_generated_csv_is_rejected_naming_file_column_and_row(case: tuple[bytes, list[str]], work: Path) -> None:
    samples, says = case
    import_rejected(work, samples, says)


# ---------------------------------------------------------------------------- (b) damaged compressed bytes
def _damage(good: bytes) -> st.SearchStrategy[bytes]:
    """Truncations and 1–3 bit flips of ``good`` (the untouched file is never drawn)."""
    truncated = st.integers(0, len(good) - 1).map(lambda k: good[:k])

    def flip(positions: list[tuple[int, int]]) -> bytes:
        data = bytearray(good)
        for at, bit in positions:
            data[at] ^= 1 << bit
        return bytes(data)

    flips = st.lists(st.tuples(st.integers(0, len(good) - 1), st.integers(0, 7)), min_size=1, max_size=3,
                     unique_by=lambda p: p).map(flip)
    return st.one_of(truncated, flips).filter(lambda data: data != good)


def damaged_or_intact(work: Path, data: bytes, name: str) -> None:
    """A damaged file is rejected naming it, or (a flip no check can see) imports a valid dataset of the
    original shape: Parquet pages carry no checksum unless their writer added one."""
    path = write_input(folder(work), data, name=name, mapping=MAPPING.format(samples=name))
    tried(data, name, path.read_bytes())
    before = stored()
    try:
        record = importing(path)()
    except AnonauditError as exc:
        message = str(exc)
        assert name in message and "\n" not in message and "internal error" not in message, message
        assert stored() == before, "a rejected input left something in the store"
        return
    summary = dataset_store.get_dataset(record["result"]["name"])["summary"]
    assert (summary["n_samples"], summary["channels"]) == (len(GOOD_FRAME), ["acc_x", "acc_y"])


GOOD_GZIP = gzip.compress(csv_bytes(GOOD_ROWS), mtime=0)
GOOD_PARQUET = parquet_bytes(GOOD_FRAME)


@HOSTILE
@given(data=_damage(GOOD_GZIP))
def test_damaged_gzip_is_rejected_or_intact(data: bytes, work: Path) -> None:
    damaged_or_intact(work, data, "samples.csv.gz")


@HOSTILE
@given(data=_damage(GOOD_PARQUET))
def test_damaged_parquet_is_rejected_or_intact(data: bytes, work: Path) -> None:
    damaged_or_intact(work, data, "samples.parquet")


# ---------------------------------------------------------------------------- (b) generated mappings
def toml_str(text: str) -> str:
    """A TOML basic string: anything but plain printable characters escaped as ``\\UXXXXXXXX``."""
    return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\U{ord(c):08x}" for c in text) + '"'


def toml_value(value: Any) -> str:
    """``value`` as TOML (tomllib reads but does not write)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return toml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_str(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_text(mapping: dict[str, dict[str, Any]]) -> str:
    return "".join(f"[{toml_str(section)}]\n" + "".join(f"{toml_str(k)} = {toml_value(v)}\n" for k, v in body.items())
                   for section, body in mapping.items())


def _valid_mapping() -> dict[str, dict[str, Any]]:
    return {"dataset": {"name": "m", "sampling_rate": 10.0, "samples": "samples.csv"},
            "columns": {"subject": "subject", "channels": ["acc_*"]}}


SCALARS = st.one_of(st.booleans(), st.integers(-10**30, 10**30), st.floats(), st.text(max_size=8))
ANY_VALUE = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text("abcxyz", min_size=1, max_size=3), inner, max_size=2), max_leaves=4)
BAD_RATES = st.one_of(st.floats().filter(lambda r: not MIN_SAMPLING_RATE <= r <= MAX_SAMPLING_RATE),
                      st.integers().filter(lambda r: not MIN_SAMPLING_RATE <= r <= MAX_SAMPLING_RATE))
STRING_KEYS = [("dataset", "name"), ("dataset", "samples"), ("dataset", "subjects"), ("columns", "subject"),
               ("columns", "recording"), ("columns", "activity"), ("columns", "time")]
KEY_NAME = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@st.composite
def hostile_mapping(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """A mapping with exactly one defect, and the words the error must hold (beyond the mapping's
    name, except for a channel pattern, an error of the samples file)."""
    mapping = _valid_mapping()
    defect = draw(st.sampled_from(["rate", "wrong_type", "unknown_key", "unknown_section", "missing", "syntax",
                                   "no_match"]))
    if defect == "rate":
        mapping["dataset"]["sampling_rate"] = draw(BAD_RATES)
        return toml_text(mapping).encode(), ["'dataset.sampling_rate'", "[dataset] sampling_rate", "100000"]
    if defect == "wrong_type":
        section, key = draw(st.sampled_from(STRING_KEYS))
        mapping[section][key] = draw(ANY_VALUE.filter(lambda v: not isinstance(v, str)))
        return toml_text(mapping).encode(), [f"'{section}.{key}'", "wrong type"]
    if defect == "unknown_key":
        section = draw(st.sampled_from(["dataset", "columns"]))
        key = draw(KEY_NAME.filter(lambda k: k not in {*_valid_mapping()["dataset"], *_valid_mapping()["columns"],
                                                         "subjects", "recording", "activity", "time"}))
        mapping[section][key] = draw(ANY_VALUE)
        return toml_text(mapping).encode(), [f"'{section}.{key}'", "unknown key"]
    if defect == "unknown_section":
        section = draw(KEY_NAME.filter(lambda k: k not in ("dataset", "columns", "channel_groups", "units")))
        mapping[section] = {"x": 1}
        return toml_text(mapping).encode(), [f"'{section}'", "unknown section"]
    if defect == "missing":
        section, key = draw(st.sampled_from([("dataset", "sampling_rate"), ("dataset", "samples"),
                                             ("columns", "subject"), ("columns", "channels")]))
        del mapping[section][key]
        return toml_text(mapping).encode(), [f"'{section}.{key}'", "missing required key"]
    if defect == "no_match":
        pattern = draw(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10).filter(
            lambda p: p not in ("subject", "acc_x", "acc_y") and not any(
                fnmatch.fnmatchcase(c, p) for c in ("acc_x", "acc_y"))))
        mapping["columns"]["channels"] = [pattern]
        return toml_text(mapping).encode(), ["samples.csv", "'columns.channels'", "matches no column"]
    text = toml_text(mapping)
    at = draw(st.integers(0, len(text)))
    text = text[:at] + draw(st.text(min_size=1, max_size=6)) + text[at:]
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return text.encode("utf-8", "surrogatepass"), ["mapping.toml"]
    assume(False)
    raise AssertionError("unreachable")


@HOSTILE
@given(case=hostile_mapping())
def test_generated_mapping_is_rejected_naming_file_and_key(case: tuple[bytes, list[str]], work: Path) -> None:
    text, says = case
    import_rejected(work, csv_bytes(GOOD_ROWS), says if "samples.csv" in says else ["mapping.toml", *says],
                    mapping=text)


# ---------------------------------------------------------------------------- (b) generated parameters
ODD_RATES = st.one_of(BAD_RATES, st.none(), st.text(max_size=4), st.booleans(), st.lists(st.floats(), max_size=2))


@HOSTILE
@given(rate=ODD_RATES)
def test_generated_sampling_rates_are_rejected_everywhere(rate: Any) -> None:
    tried(repr(rate), "rate")
    choice = ColumnChoice(subject="subject", channels=["acc_x"], sampling_rate=rate, name="n")
    assert isinstance(rejected(lambda: choice.check(["subject", "acc_x"]), says=["parameter 'sampling_rate'", "Hz"]),
                      ParameterError)
    assert isinstance(rejected(lambda: resample(tiny_dataset(), rate), says=["parameter 'rate'", "Hz"]), ParameterError)
    assert isinstance(rejected(lambda: tiny_dataset(rate=rate), says=["dataset 'tiny'", "sampling rate", "Hz"]),
                      DataError)


@HOSTILE
@given(fmt=st.text(max_size=10).filter(lambda f: f not in (*FORMATS, "auto")),
       option=KEY_NAME.filter(lambda k: k not in ("name", "progress")))
def test_generated_loader_parameters_are_rejected(fmt: str, option: str, work: Path) -> None:
    tried(fmt, option, "loader parameters")
    mapping = write_input(folder(work), csv_bytes(GOOD_ROWS))
    assert isinstance(rejected(lambda: load_dataset(mapping, fmt), says=["parameter 'format'"]), ParameterError)
    assert isinstance(rejected(lambda: load_dataset(mapping, "tabular", **{option: 1}),
                               says=[f"parameter '{option}'", "tabular"]), ParameterError)


def test_blank_lines_at_the_end_are_dropped_and_inside_are_errors(work: Path) -> None:
    trailing = write_input(folder(work), csv_bytes(GOOD_ROWS) + b"\n\n")
    record = importing(trailing)()
    assert record["status"] == "succeeded" and record["result"]["n_samples"] == len(GOOD_ROWS)
    inside = csv_bytes(GOOD_ROWS[:1]) + b"\n" + csv_bytes(GOOD_ROWS[1:], header="").lstrip(b"\n")
    import_rejected(work, inside, says=["row 3", "missing subject"])
