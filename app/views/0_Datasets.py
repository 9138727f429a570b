"""Datasets page: import from the server or upload a table, then inspect subjects, activities and signals.

Uploads are stored under generated names (never the uploaded file's own name) after checking
type and size; the user maps columns in a form, the page writes the mapping next to the upload
and queues an ``import`` job — the worker reads and validates the data, not the app.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ui  # noqa: E402

from anonaudit.data.dataset import RECORDINGS_FILE, SAMPLES_FILE  # noqa: E402
from anonaudit.data.loaders import FORMATS  # noqa: E402
from anonaudit.data.mapping import ColumnChoice, write_mapping  # noqa: E402
from anonaudit.errors import AnonauditError  # noqa: E402
from anonaudit.store import datasets as dataset_store  # noqa: E402
from anonaudit.store.uploads import MAX_UPLOAD_BYTES, delete_upload, uploads_dir  # noqa: E402

SAMPLE_TYPES = (".csv", ".csv.gz", ".parquet")
PREVIEW_ROWS = 200
NONE = "—"
LABEL_COLUMN = "__label__"  # the activity-code column of a stored dataset's samples.parquet
GUESSES = {"subject": ("subject", "user", "participant", "person", "id"), "recording": ("recording", "trial", "session"),
           "activity": ("activity", "label", "class"), "time": ("time", "time_s", "timestamp", "t")}

st.set_page_config(page_title="anonaudit · datasets", layout="wide")
st.title("Datasets")
st.caption("Import a dataset from the server or upload your own table; every import is a job a worker runs.")


# ---------------------------------------------------------------------------- import and upload
def _preview(path: Path) -> pd.DataFrame:
    """The first rows of an uploaded table (enough for column names and types)."""
    if path.suffix == ".parquet":
        batch = next(pq.ParquetFile(path).iter_batches(batch_size=PREVIEW_ROWS), None)
        return batch.to_pandas() if batch is not None else pd.DataFrame()
    return pd.read_csv(path, nrows=PREVIEW_ROWS)


def _guess(columns: list[str], role: str) -> int:
    """Index (in [NONE, *columns]) of the column whose name suggests ``role``."""
    lower = [c.lower() for c in columns]
    for name in GUESSES[role]:
        if name in lower:
            return lower.index(name) + 1
    return 0


def _reject(message: str | None, *uploads: UploadedFile | None) -> None:
    """Show why an upload was rejected (unless already shown) and delete its stored copies (``ui.stored_upload``
    keeps them under ``upload-<file id>``); the next run stores and checks the file afresh."""
    if message is not None:
        st.error(message)
    for upload in uploads:
        stored = st.session_state.pop(f"upload-{upload.file_id}", None) if upload is not None else None
        if stored is not None:
            delete_upload(stored)


def _upload_form() -> None:
    limit = f"{MAX_UPLOAD_BYTES / 2**20:.0f} MB"
    upload = st.file_uploader(f"Samples table: one row per sample (CSV, CSV.gz or Parquet, at most {limit})",
                              type=["csv", "gz", "parquet"])
    subjects_upload = st.file_uploader("Subjects table (optional CSV: a subject column plus attributes such as age)",
                                       type=["csv"])
    if upload is None:
        return
    try:
        samples = ui.stored_upload(upload, SAMPLE_TYPES)
        subjects = ui.stored_upload(subjects_upload, (".csv",)) if subjects_upload is not None else None
        preview = _preview(samples)
    except (AnonauditError, ValueError, OSError) as exc:  # pandas/pyarrow parse errors are ValueErrors
        _reject(f"{upload.name}: {exc}", upload, subjects_upload)
        return
    columns = [str(c) for c in preview.columns]
    if len(columns) < 2 or preview.empty:
        _reject(f"{upload.name}: needs a header row, a subject column, at least one signal column and data rows",
                upload, subjects_upload)
        return
    st.dataframe(preview.head(5), hide_index=True, width="stretch")
    with st.form("mapping"):
        st.markdown("**Which column holds what**")
        name = st.text_input("Dataset name", value=Path(upload.name).name.split(".")[0] or "upload")
        rate = st.number_input("Sampling rate (Hz)", min_value=0.001, value=50.0)
        options = [NONE, *columns]
        picks = {role: st.selectbox(role.capitalize() + (" (required)" if role == "subject" else " (optional)"),
                                    options, index=_guess(columns, role) or (1 if role == "subject" else 0))
                 for role in GUESSES}
        taken = {v for v in picks.values() if v != NONE}
        numeric = [c for c in columns if pd.api.types.is_numeric_dtype(preview[c]) and c not in taken]
        channels = st.multiselect("Signal channels", columns, default=numeric)
        go = st.form_submit_button("Queue import", type="primary")
    if not go:
        return
    chosen = {role: None if col == NONE else col for role, col in picks.items()}
    if chosen["subject"] is None:
        _reject("subject: choose the column that holds the subject id", upload, subjects_upload)
        return
    bad = [c for c in channels if not pd.api.types.is_numeric_dtype(preview[c])]
    if bad:
        _reject(f"channels: column {bad[0]!r} is not numeric in the first {len(preview)} rows", upload, subjects_upload)
        return
    try:
        mapping = write_mapping(uploads_dir(), samples.name, ColumnChoice(
            subject=chosen["subject"], channels=channels, sampling_rate=float(rate), name=name.strip(),
            recording=chosen["recording"], activity=chosen["activity"], time=chosen["time"]),
            columns, subjects=subjects.name if subjects else None)
    except AnonauditError as exc:
        _reject(str(exc), upload, subjects_upload)
        return
    if ui.submit("import", {"path": str(mapping), "format": "tabular", "name": name.strip()}) is None:
        delete_upload(mapping)
        _reject(None, upload, subjects_upload)  # ui.submit said why


def _path_form() -> None:
    why = ui.denied("import_path")
    if why is not None:
        st.info(f"Signed in as {ui.current_role()}: {why}. Upload a table instead.")
        return
    with st.form("import"):
        path = st.text_input("Path on the server (SisFall folder or .tar.xz, HAPT csv, UTD-MHAD folder, mapping.toml)",
                             value="sample_data")
        fmt = st.selectbox("Format", ["auto", *FORMATS])
        name = st.text_input("Name (optional)")
        replace = st.checkbox("Replace a different dataset of the same name")
        go = st.form_submit_button("Queue import", type="primary")
    if go:  # the data roots, then the path's existence, are checked by the submission itself
        ui.submit("import", {"path": str(Path(path).expanduser().resolve()), "format": fmt,
                             "name": name.strip() or None, "replace": replace})


upload_tab, path_tab = st.tabs(["Upload a table", "Import from the server"])
with upload_tab:
    _upload_form()
with path_tab:
    _path_form()

imports = ui.recent("import", limit=5)
if imports:
    with st.expander("Import jobs", expanded=any(j["status"] in ("queued", "running", "failed") for j in imports)):
        ui.jobs_table(imports)


# ---------------------------------------------------------------------------- inspect
@st.cache_data(show_spinner=False, max_entries=8)
def subject_activity_seconds(storage_path: str, activities: tuple[str, ...], rate: float) -> pd.DataFrame:
    """Seconds of data per subject × activity, from the stored labels (one bincount, no loop over samples)."""
    folder = Path(storage_path)
    labels = pq.read_table(folder / SAMPLES_FILE, columns=[LABEL_COLUMN]).column(0).to_numpy().astype(np.int64)
    recs = pd.read_parquet(folder / RECORDINGS_FILE, columns=["subject", "length"])
    subjects, subject_code = np.unique(recs["subject"].to_numpy(str), return_inverse=True)
    per_sample = np.repeat(subject_code, recs["length"].to_numpy())
    n_act = len(activities) + 1  # last column: unlabelled (-1)
    cells = np.bincount(per_sample * n_act + np.where(labels < 0, n_act - 1, labels),
                        minlength=len(subjects) * n_act).reshape(len(subjects), n_act)
    frame = pd.DataFrame(cells / rate, index=pd.Index(subjects, name="subject"),
                         columns=[*activities, "unlabelled"]).round(1)
    return frame.loc[:, frame.sum() > 0]


@st.cache_data(show_spinner=False, max_entries=16)
def recording_signals(storage_path: str, start: int, length: int, channels: tuple[str, ...]) -> pd.DataFrame:
    """One recording's channels, reading only the Parquet row groups that hold it."""
    file = pq.ParquetFile(Path(storage_path) / SAMPLES_FILE)
    bounds = np.cumsum([0] + [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)])
    first = int(np.searchsorted(bounds, start, side="right") - 1)
    last = int(np.searchsorted(bounds, start + length, side="left"))
    table = file.read_row_groups(list(range(first, last)), columns=[*channels, LABEL_COLUMN])
    offset = start - int(bounds[first])
    return table.slice(offset, length).to_pandas()


def _inspect(record: dict) -> None:
    s = record["summary"]
    cells = st.columns(5)
    for cell, (label, value) in zip(cells, [("subjects", s["n_subjects"]), ("recordings", s["n_recordings"]),
                                            ("channels", s["n_channels"]), ("rate (Hz)", f"{s['sampling_rate']:g}"),
                                            ("hours", f"{s['duration_s'] / 3600:.2f}")]):
        cell.metric(label, value)
    if record.get("releasable") is not None:
        (st.success if record["releasable"] else st.error)(
            (record.get("release_check") or {}).get("reason", "release checked"))
    table = subject_activity_seconds(record["storage_path"], tuple(s["activities"]), float(s["sampling_rate"]))
    left, right = st.columns(2)
    with left:
        st.markdown("**Seconds per activity**")
        st.bar_chart(table.sum().rename("seconds"), horizontal=True)
    with right:
        st.markdown("**Seconds per subject**")
        st.bar_chart(table.sum(axis=1).rename("seconds"))
    with st.expander("Subject × activity (seconds)"):
        st.dataframe(table, width="stretch")
    recs = pd.read_parquet(Path(record["storage_path"]) / RECORDINGS_FILE)
    st.markdown("**Signals of one recording**")
    pick_left, pick_right = st.columns([1, 2])
    subject = pick_left.selectbox("Subject", sorted(recs["subject"].unique()))
    mine = recs[recs["subject"] == subject]
    recording = pick_left.selectbox("Recording", mine["recording"].tolist())
    channels = pick_right.multiselect("Channels", s["channels"], default=s["channels"][:3])
    if not channels:
        st.info("Choose at least one channel to plot.")
        return
    row = mine[mine["recording"] == recording].iloc[0]
    signals = recording_signals(record["storage_path"], int(row["start"]), int(row["length"]), tuple(channels))
    codes = signals.pop(LABEL_COLUMN).to_numpy()
    signals.index = pd.Index(np.arange(len(signals)) / float(s["sampling_rate"]), name="seconds")
    st.line_chart(signals)
    names = [s["activities"][c] if c >= 0 else "unlabelled" for c in np.unique(codes)]
    st.caption(f"{len(signals) / s['sampling_rate']:.1f} s; activities: {', '.join(names)}")


datasets = dataset_store.list_datasets()
st.subheader("Inspect")
if not datasets:
    st.info("No datasets yet.")
else:
    st.dataframe(pd.DataFrame(datasets)[["id", "name", "format", "n_subjects", "n_recordings", "n_samples",
                                          "sampling_rate", "releasable", "created_at"]],
                 hide_index=True, width="stretch")
    chosen = st.selectbox("Dataset", [d["name"] for d in datasets])
    _inspect(next(d for d in datasets if d["name"] == chosen))
