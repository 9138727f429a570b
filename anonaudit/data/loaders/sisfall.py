"""SisFall (Sucerquia et al., Sensors 2017): falls and daily activities of young and elderly adults.

Reads the published ``SisFall_dataset.tar.xz`` directly or an unpacked folder. Each file
``D01_SA01_R01.txt`` is one trial of one activity: 200 Hz, nine comma-separated ADC counts per
line ending in ``;`` (ADXL345 acc, ITG3200 gyro, MMA8451Q acc), converted to g and deg/s with
the Readme's formula ``(2 * range / 2**resolution) * counts``. Row numbers in errors are line
numbers of the member file.

Speed matters (4,505 files, 722 MB of text, ~150 MB of xz): a background thread decompresses
the archive as a stream (lzma releases the GIL) while the caller's thread parses each member
with ``np.fromstring`` into int32: on 2 cores the whole archive loads in ~16 s, of which ~13 s
is the (single-stream, so serial) xz decompression; peak memory ~1.3 GB.
"""

from __future__ import annotations

import lzma
import queue
import re
import tarfile
import threading
from collections.abc import Callable, Generator
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd

from anonaudit.data.dataset import SensorDataset, concat_recordings
from anonaudit.errors import DataError, ParameterError
from anonaudit.progress import ProgressFn, null_progress

SAMPLING_RATE = 200.0
ADL = {
    "D01": "Walking slowly",
    "D02": "Walking quickly",
    "D03": "Jogging slowly",
    "D04": "Jogging quickly",
    "D05": "Walking upstairs and downstairs slowly",
    "D06": "Walking upstairs and downstairs quickly",
    "D07": "Slowly sit in a half height chair, wait a moment, and up slowly",
    "D08": "Quickly sit in a half height chair, wait a moment, and up quickly",
    "D09": "Slowly sit in a low height chair, wait a moment, and up slowly",
    "D10": "Quickly sit in a low height chair, wait a moment, and up quickly",
    "D11": "Sitting a moment, trying to get up, and collapse into a chair",
    "D12": "Sitting a moment, lying slowly, wait a moment, and sit again",
    "D13": "Sitting a moment, lying quickly, wait a moment, and sit again",
    "D14": "Being on one's back change to lateral position, wait a moment, and change to one's back",
    "D15": "Standing, slowly bending at knees, and getting up",
    "D16": "Standing, slowly bending without bending knees, and getting up",
    "D17": "Standing, get into a car, remain seated and get out of the car",
    "D18": "Stumble while walking",
    "D19": "Gently jump without falling (trying to reach a high object)",
}
FALLS = {
    "F01": "Fall forward while walking caused by a slip",
    "F02": "Fall backward while walking caused by a slip",
    "F03": "Lateral fall while walking caused by a slip",
    "F04": "Fall forward while walking caused by a trip",
    "F05": "Fall forward while jogging caused by a trip",
    "F06": "Vertical fall while walking caused by fainting",
    "F07": "Fall while walking, with use of hands in a table to dampen fall, caused by fainting",
    "F08": "Fall forward when trying to get up",
    "F09": "Lateral fall when trying to get up",
    "F10": "Fall forward when trying to sit down",
    "F11": "Fall backward when trying to sit down",
    "F12": "Lateral fall when trying to sit down",
    "F13": "Fall forward while sitting, caused by fainting or falling asleep",
    "F14": "Fall backward while sitting, caused by fainting or falling asleep",
    "F15": "Lateral fall while sitting, caused by fainting or falling asleep",
}
_SELECTIONS = {"all": {**ADL, **FALLS}, "adl": ADL, "falls": FALLS}
# device, sensor type, range (± g or ± deg/s), resolution in bits — from the Readme
DEVICES = (("adxl345", "acc", 16, 13), ("itg3200", "gyro", 2000, 16), ("mma8451q", "acc", 8, 14))
CHANNELS = [f"{dev}_{kind}_{axis}" for dev, kind, _, _ in DEVICES for axis in "xyz"]
SCALE = np.repeat([2 * rng / 2**bits for _, _, rng, bits in DEVICES], 3).astype(np.float32)
_HIGH = np.repeat([2 ** (bits - 1) - 1 for _, _, _, bits in DEVICES], 3)  # signed ADC range
_LOW = -_HIGH - 1
UNITS = {ch: ("g" if "_acc_" in ch else "deg/s") for ch in CHANNELS}
CHANNEL_GROUPS = {
    **{dev: [c for c in CHANNELS if c.startswith(dev + "_")] for dev, _, _, _ in DEVICES},
    **{kind: [c for c in CHANNELS if f"_{kind}_" in c] for kind in ("acc", "gyro")},
}
DEMOGRAPHICS_FILE = "subjects_demographics_from_Readme.csv"
README = "Readme.txt"
ARCHIVE = "SisFall_dataset.tar.xz"
FILE_PATTERN = re.compile(r"([DF]\d{2})_(S[AE]\d{2})_R(\d{2})\.txt")
_SUBJECT_ID = re.compile(r"S[AE]\d{2}")
_SUBJECT_ROW = re.compile(
    r"^\|\s*(S[AE]\d{2})\s*\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|\s*([MF])\s*\|", re.MULTILINE
)
_SEMICOLON_TO_COMMA = bytes.maketrans(b";", b",")
_TAR_BUFFER = 1 << 18  # compressed bytes per lzma call; larger buffers measured no faster
_QUEUE_FILES = 32  # decompressed members buffered between the threads (~30 MB at most)


def load_sisfall(
    path: str | Path,
    *,
    name: str = "sisfall",
    activities: str = "all",
    progress: ProgressFn = null_progress,
) -> SensorDataset:
    """Load SisFall from ``SisFall_dataset.tar.xz``, an unpacked folder, or the folder holding the archive.

    ``activities`` selects "all" codes, only "adl" (D01..D19) or only "falls" (F01..F15); the
    activity vocabulary is the selected Readme table (names like "D01 Walking slowly"), so label
    codes do not depend on which files are present. Recordings are ordered by subject, activity
    and trial whatever the order of the files. A file inside a subject folder (``SA15/``)
    belongs to that subject even if its name says otherwise: the published archive stores
    SA15's D17 trials as ``SA15/D17_SE15_R0x.txt`` (SA15 would otherwise lack D17 and SE15 would
    have each D17 trial twice); the ``file`` column keeps the original name. Demographics come from
    ``subjects_demographics_from_Readme.csv`` next to the archive/folder, else from the subject
    table of ``Readme.txt`` (inside the archive/folder, else next to it).
    """
    if activities not in _SELECTIONS:
        raise ParameterError("activities", f"unknown {activities!r}; choose one of {list(_SELECTIONS)}")
    selected = _SELECTIONS[activities]
    label_of = {code: k for k, code in enumerate(selected)}
    source = _locate(Path(path))

    def wanted(member: str) -> bool:
        base = member.rsplit("/", 1)[-1]
        match = FILE_PATTERN.fullmatch(base)
        return base == README or (match is not None and match.group(1) in label_of)

    members = _archive_members(source, wanted) if source.is_file() else _folder_members(source, wanted)
    trials: list[tuple[tuple[str, str, int], str, np.ndarray]] = []
    readme = None
    with closing(members):  # on an error or cancellation, stop the decompression thread at once
        for member, data, fraction in members:
            base = member.rsplit("/", 1)[-1]
            if base == README:
                readme = data
                continue
            activity, subject, trial = FILE_PATTERN.fullmatch(base).groups()
            folder = Path(member).parent.name
            if _SUBJECT_ID.fullmatch(folder):
                subject = folder  # the archive's SA15/ holds its D17 trials misnamed D17_SE15_R0x.txt
            counts = parse_counts(data, f"{member} in {source}" if source.is_file() else member)
            trials.append(((subject, activity, int(trial)), base, counts.astype(np.int16)))
            progress(fraction, f"read {base}")
    if not trials:
        raise DataError(f"no SisFall trial files (like D01_SA01_R01.txt) for activities={activities!r}",
                        file=source)

    trials.sort(key=lambda t: t[0])
    recordings = pd.DataFrame(
        [(f"{a}_{s}_R{t:02d}", s, a, t, file) for (s, a, t), file, _ in trials],
        columns=["recording", "subject", "activity", "trial", "file"],
    )
    parts = [(counts, np.full(len(counts), label_of[a], np.int16)) for (_, a, _), _, counts in trials]
    trials.clear()  # the int16 copies go as soon as they are concatenated
    signals, labels, starts, lengths = concat_recordings(parts)
    del parts
    signals *= SCALE  # exact: counts and the power-of-two (gyro: 125/2048) scales fit float32
    recordings.insert(2, "start", starts)
    recordings.insert(3, "length", lengths)
    subjects, origin = _demographics(source, readme)
    present = set(recordings["subject"])
    missing = sorted(present - set(subjects["subject"]))
    if missing:
        raise DataError(f"no demographics for subjects {missing}", file=origin)
    subjects = subjects[subjects["subject"].isin(present)].sort_values("subject")
    return SensorDataset(
        name=name, sampling_rate=SAMPLING_RATE, channels=CHANNELS, signals=signals, labels=labels,
        activities=[f"{code} {title}" for code, title in selected.items()], recordings=recordings,
        subjects=subjects, channel_groups=CHANNEL_GROUPS, units=UNITS, source=f"sisfall:{source}",
    )


def parse_counts(data: bytes, where: str) -> np.ndarray:
    """ADC counts of one trial file as (n, 9) int32; a bad line raises DataError naming it.

    The fast path validates the layout vectorised (one ';' per line, eight commas before it)
    and parses all numbers in one ``np.fromstring`` call; only a file that fails is re-read
    line by line, to name the first bad line.
    """
    text = data.rstrip()  # some files end in blank or whitespace-only lines
    if not text:
        raise DataError("file has no samples", file=where)
    n_lines = text.count(b"\n") + 1
    raw = np.frombuffer(text, np.uint8)
    ends = np.flatnonzero(raw == ord(";"))
    values = None
    if len(ends) == n_lines and text.endswith(b";"):
        commas = np.flatnonzero(raw == ord(","))
        if (np.diff(np.searchsorted(commas, ends), prepend=0) == len(CHANNELS) - 1).all():
            try:
                values = np.fromstring(text[:-1].translate(_SEMICOLON_TO_COMMA), dtype=np.int32, sep=",")
            except ValueError:
                values = None
    if values is None or values.size != n_lines * len(CHANNELS):
        _raise_bad_line(text, where)
    counts = values.reshape(n_lines, len(CHANNELS))
    outside = (counts < _LOW) | (counts > _HIGH)
    if outside.any():
        row, col = np.argwhere(outside)[0]
        raise DataError(f"count {counts[row, col]} outside the ADC range [{_LOW[col]}, {_HIGH[col]}]",
                        file=where, column=CHANNELS[col], row=int(row) + 1)
    return counts


def _raise_bad_line(text: bytes, where: str) -> None:
    """Find and report the first line that is not nine integers followed by ';'."""
    for number, line in enumerate(text.split(b"\n"), start=1):
        body = line.strip()
        try:
            values = [int(f) for f in body[:-1].split(b",")] if body.endswith(b";") else []
        except ValueError:
            values = []
        if len(values) != len(CHANNELS):  # described, not quoted: a message shows no line of a file
            found = f"{len(body.rstrip(b';').split(b','))} fields" + ("" if body.endswith(b";") else ", no ';'")
            raise DataError(f"expected 9 comma-separated integers ending in ';', found {found}",
                            file=where, row=number)
    raise DataError("cannot parse the samples", file=where)


# ---------------------------------------------------------------------------- sources
def _locate(path: Path) -> Path:
    """The archive or the folder to read: a folder holding only the archive means the archive."""
    if path.is_file():
        if not path.name.endswith((".tar.xz", ".txz")):
            raise DataError("expected SisFall_dataset.tar.xz or an unpacked SisFall folder", file=path)
        return path
    if not path.is_dir():
        raise DataError("does not exist", file=path)
    if (path / ARCHIVE).is_file() and not any(FILE_PATTERN.fullmatch(f.name) for f in path.rglob("*.txt")):
        return path / ARCHIVE
    return path


def _folder_members(folder: Path, wanted: Callable[[str], bool]) -> Generator[tuple[str, bytes, float], None, None]:
    files = sorted(f for f in folder.rglob("*.txt") if wanted(f.name))
    for k, file in enumerate(files):
        yield str(file), file.read_bytes(), (k + 1) / len(files)


def _archive_members(archive: Path, wanted: Callable[[str], bool]) -> Generator[tuple[str, bytes, float], None, None]:
    """Yield (member name, content, fraction of the archive read) of the wanted regular files.

    A producer thread decompresses the stream while the consumer parses; the bounded queue
    caps memory. If the consumer stops early (error, cancellation) the producer is told to
    stop and joined, so no thread outlives the call.
    """
    items: queue.Queue = queue.Queue(maxsize=_QUEUE_FILES)
    stop = threading.Event()
    done = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            size = max(archive.stat().st_size, 1)
            with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r|xz", bufsize=_TAR_BUFFER) as tar:
                for info in tar:
                    if stop.is_set():
                        return
                    if info.isfile() and wanted(info.name):
                        content = tar.extractfile(info).read()
                        if not put((info.name, content, min(raw.tell() / size, 1.0))):
                            return
            put(done)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    worker = threading.Thread(target=produce, name="sisfall-xz", daemon=True)
    worker.start()
    try:
        while (item := items.get()) is not done:
            if isinstance(item, BaseException):
                if isinstance(item, (tarfile.TarError, lzma.LZMAError, EOFError, OSError)):
                    raise DataError(f"cannot read the archive: {item}", file=archive) from item
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


# ---------------------------------------------------------------------------- demographics
def _demographics(source: Path, readme: bytes | None) -> tuple[pd.DataFrame, str]:
    """Subjects table (subject, age, height_cm, weight_kg, gender, age_group) and where it came from."""
    folder = source.parent if source.is_file() else source
    for candidate in (folder / DEMOGRAPHICS_FILE, folder.parent / DEMOGRAPHICS_FILE):
        if candidate.is_file():
            table, origin = _read_demographics_csv(candidate), str(candidate)
            break
    else:
        origin = f"{README} in {source}"
        if readme is None:
            beside = [p for p in (folder / README, folder.parent / README) if p.is_file()]
            if not beside:
                raise DataError(f"no demographics: put {DEMOGRAPHICS_FILE} or {README} next to it", file=source)
            readme, origin = beside[0].read_bytes(), str(beside[0])
        rows = _SUBJECT_ROW.findall(readme.decode("latin-1"))
        if not rows:
            raise DataError("no subject table (| SA01 | age | height | weight | gender |)", file=origin)
        table = pd.DataFrame(rows, columns=["subject", "age", "height_cm", "weight_kg", "gender"])
    table = table.astype({"subject": str, "age": np.int64, "height_cm": np.float64, "weight_kg": np.float64,
                          "gender": str})
    table["age_group"] = np.where(table["subject"].str.startswith("SE"), "elderly", "young")
    return table, origin


def _read_demographics_csv(file: Path) -> pd.DataFrame:
    table = pd.read_csv(file, dtype={"subject": str, "gender": str})
    for col in ("subject", "age", "height_cm", "weight_kg", "gender"):
        if col not in table:
            raise DataError("missing column", file=file, column=col)
    bad = table[["age", "height_cm", "weight_kg"]].isna().any(axis=1) | ~table["gender"].isin(["F", "M"])
    if bad.any():
        raise DataError("missing or invalid demographic value", file=file, row=int(np.argmax(bad)) + 2)
    return table[["subject", "age", "height_cm", "weight_kg", "gender"]]
