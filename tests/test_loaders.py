"""Loaders on tiny fixture files written here (never the real datasets)."""

from __future__ import annotations

import gzip
import tarfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io

from anonaudit.data.dataset import UNLABELLED
from anonaudit.data.loaders import FORMATS, detect_format, load_dataset
from anonaudit.data.loaders.hapt import load_hapt
from anonaudit.data.loaders.sisfall import load_sisfall
from anonaudit.data.loaders.tabular import load_tabular
from anonaudit.data.loaders.utd_mhad import ACTIONS, load_utd_mhad
from anonaudit.errors import DataError, ParameterError

# ---------------------------------------------------------------------------- SisFall
README = """---- SisFall: A Fall and Movement Dataset ----
+---------+-----+--------+--------+--------+
| Subject | Age | Height | Weight | Gender |
+---------+-----+--------+--------+--------+
| SA01    | 26  | 165    | 53     | F      |
| SE01    | 71  | 171    | 102.5  | M      |
| SE02    | 75  | 150    | 57     | F      |
+---------+-----+--------+--------+--------+
"""
# one g / 125 deg/s / one g in counts: (2*16/2**13)*256, (2*2000/2**16)*2048, (2*8/2**14)*1024
ONE = [256, 0, -256, 2048, 0, -2048, 1024, 0, -1024]


def sisfall_text(rows: np.ndarray, trailer: str = "") -> bytes:
    lines = ["".join(f"{v:4d}," for v in row)[:-1] + ";" for row in rows]
    return ("\r\n".join(lines) + "\r\n" + trailer).encode()


def sisfall_files() -> dict[str, bytes]:
    """Member path -> content: 3 subjects, one misnamed file in SA01's folder, padded endings."""
    base = np.array([ONE, [1, 2, 3, 4, 5, 6, 7, 8, 9], [-4096, 4095, 0, -32768, 32767, 0, -8192, 8191, 0]])
    return {
        "SisFall_dataset/Readme.txt": README.encode("latin-1"),
        "SisFall_dataset/SA01/D01_SA01_R01.txt": sisfall_text(base, trailer="   \r\n\r\n"),
        "SisFall_dataset/SA01/F01_SA01_R02.txt": sisfall_text(base[:2] * 2),
        "SisFall_dataset/SA01/D05_SE01_R01.txt": sisfall_text(base[:1]),  # misnamed, belongs to SA01
        "SisFall_dataset/SE01/D05_SE01_R01.txt": sisfall_text(base[1:]),
        "SisFall_dataset/SE01/desktop.ini": b"[.ShellClassInfo]",
    }


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def write_archive(path: Path, files: dict[str, bytes]) -> Path:
    src = write_tree(path.parent / "archive_src", files)
    with tarfile.open(path, "w:xz") as tar:
        tar.add(src / "SisFall_dataset", arcname="SisFall_dataset")
    return path


def test_sisfall_folder_converts_counts_and_labels(tmp_path: Path) -> None:
    root = write_tree(tmp_path, sisfall_files())
    progress: list[float] = []
    ds = load_sisfall(root / "SisFall_dataset", progress=lambda f, m: progress.append(f))
    assert ds.channels[:4] == ["adxl345_acc_x", "adxl345_acc_y", "adxl345_acc_z", "itg3200_gyro_x"]
    assert ds.sampling_rate == 200.0
    np.testing.assert_array_equal(ds.signals[0], [1, 0, -1, 125, 0, -125, 1, 0, -1])
    np.testing.assert_allclose(ds.signals[2], [-16, 4095 / 256, 0, -2000, 32767 * 4000 / 65536, 0, -8, 8191 / 1024, 0])
    assert ds.units["adxl345_acc_x"] == "g" and ds.units["itg3200_gyro_z"] == "deg/s"
    assert ds.channel_groups["gyro"] == ["itg3200_gyro_x", "itg3200_gyro_y", "itg3200_gyro_z"]
    assert ds.channel_groups["mma8451q"] == ["mma8451q_acc_x", "mma8451q_acc_y", "mma8451q_acc_z"]
    assert len(ds.channel_groups["acc"]) == 6
    rec = ds.recordings
    assert rec["recording"].tolist() == ["D01_SA01_R01", "D05_SA01_R01", "F01_SA01_R02", "D05_SE01_R01"]
    assert rec["subject"].tolist() == ["SA01", "SA01", "SA01", "SE01"]
    assert rec["file"].tolist()[1] == "D05_SE01_R01.txt"
    assert rec["length"].tolist() == [3, 1, 2, 2] and rec["start"].tolist() == [0, 3, 4, 6]
    assert ds.activities[0] == "D01 Walking slowly" and len(ds.activities) == 34
    assert ds.activities[19] == "F01 Fall forward while walking caused by a slip"
    np.testing.assert_array_equal(ds.labels, [0, 0, 0, 4, 19, 19, 4, 4])
    subjects = ds.subjects.set_index("subject")
    assert list(subjects.index) == ["SA01", "SE01"]  # SE02 has no recordings
    assert subjects.loc["SE01", "weight_kg"] == 102.5 and subjects.loc["SA01", "age"] == 26
    assert subjects["age_group"].tolist() == ["young", "elderly"]
    assert subjects["gender"].tolist() == ["F", "M"]
    assert progress and progress[-1] == 1.0


def test_sisfall_archive_equals_folder_and_prefers_demographics_csv(tmp_path: Path) -> None:
    files = sisfall_files()
    folder = load_sisfall(write_tree(tmp_path / "unpacked", files))
    archive = write_archive(tmp_path / "dl" / "SisFall_dataset.tar.xz", files)
    (archive.parent / "subjects_demographics_from_Readme.csv").write_text(
        "subject,age,height_cm,weight_kg,gender\nSA01,27,165,53,F\nSE01,71,171,102.5,M\n")
    assert detect_format(archive) == "sisfall" and detect_format(tmp_path / "unpacked") == "sisfall"
    ds = load_dataset(archive)
    np.testing.assert_array_equal(ds.signals, folder.signals)
    np.testing.assert_array_equal(ds.labels, folder.labels)
    pd.testing.assert_frame_equal(ds.recordings, folder.recordings)
    assert ds.subjects.set_index("subject").loc["SA01", "age"] == 27  # from the CSV, not the Readme
    assert detect_format(archive.parent) == "sisfall"
    assert load_dataset(archive.parent, activities="falls").recordings["recording"].tolist() == ["F01_SA01_R02"]


def test_sisfall_activity_selection(tmp_path: Path) -> None:
    ds = load_sisfall(write_tree(tmp_path, sisfall_files()), activities="adl")
    assert len(ds.activities) == 19 and ds.activities[-1].startswith("D19 ")
    assert set(ds.recordings["activity"]) == {"D01", "D05"}
    with pytest.raises(ParameterError, match="activities"):
        load_sisfall(tmp_path, activities="walks")


@pytest.mark.parametrize("archived", [False, True])
def test_sisfall_malformed_line_names_member_and_line(tmp_path: Path, archived: bool) -> None:
    files = sisfall_files()
    text = files["SisFall_dataset/SA01/D01_SA01_R01.txt"].split(b"\r\n")
    text[1] = b"  1,  2,  3,  4,  5,  6,  7,  8;"  # eight values
    files["SisFall_dataset/SA01/D01_SA01_R01.txt"] = b"\r\n".join(text)
    path = write_archive(tmp_path / "a.tar.xz", files) if archived else write_tree(tmp_path, files)
    with pytest.raises(DataError, match=r"SA01/D01_SA01_R01\.txt.*row 2") as err:
        load_sisfall(path)
    assert err.value.row == 2


def test_sisfall_bad_number_and_out_of_range(tmp_path: Path) -> None:
    files = sisfall_files()
    ones = sisfall_text(np.ones((3, 9), int))
    files["SisFall_dataset/SE01/D05_SE01_R01.txt"] = ones.replace(b"   1;\r\n   1,", b"   x;\r\n   1,", 1)
    with pytest.raises(DataError, match=r"D05_SE01_R01\.txt, row 1"):
        load_sisfall(write_tree(tmp_path / "a", files))
    files["SisFall_dataset/SE01/D05_SE01_R01.txt"] = sisfall_text(np.array([ONE, [5000, 0, 0, 0, 0, 0, 0, 0, 0]]))
    with pytest.raises(DataError, match=r"column 'adxl345_acc_x', row 2: count 5000 outside"):
        load_sisfall(write_tree(tmp_path / "b", files))


def test_sisfall_archive_errors_stop_the_reader_thread(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "SisFall_dataset.tar.xz", sisfall_files())

    def cancel(fraction: float, message: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        load_sisfall(archive, progress=cancel)
    assert [t.name for t in threading.enumerate() if t.name == "sisfall-xz"] == []
    truncated = tmp_path / "cut" / "SisFall_dataset.tar.xz"
    truncated.parent.mkdir()
    truncated.write_bytes(archive.read_bytes()[:300])
    with pytest.raises(DataError, match="cannot read the archive"):
        load_sisfall(truncated)


def test_sisfall_subject_without_demographics(tmp_path: Path) -> None:
    files = sisfall_files()
    files["SisFall_dataset/SA07/D01_SA07_R01.txt"] = sisfall_text(np.array([ONE]))
    with pytest.raises(DataError, match=r"no demographics for subjects \['SA07'\]"):
        load_sisfall(write_tree(tmp_path, files))


# ---------------------------------------------------------------------------- HAPT
HAPT_COLUMNS = ["user", "recording", "acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z", "sequence", "label"]


def hapt_frame() -> pd.DataFrame:
    labels = [-1, 1, 1, 7, 7, 5, -1, 2, 2, 12]  # user 1 rec 0 (6 rows), user 1 rec 1 (2), user 10 rec 0 (2)
    frame = pd.DataFrame({
        "user": [1] * 8 + [10] * 2,
        "recording": [0] * 6 + [1] * 2 + [0] * 2,
        **{c: np.arange(10) / 10 + k for k, c in enumerate(HAPT_COLUMNS[2:8])},
        "sequence": [0, 1, 2, 3, 4, 5, 0, 1, 7, 8],
        "label": labels,
    })
    return frame


def write_hapt(path: Path, frame: pd.DataFrame) -> Path:
    path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    return path


def test_hapt_recordings_labels_and_transitions(tmp_path: Path) -> None:
    path = write_hapt(tmp_path / "hapt.csv.gz", hapt_frame())
    assert detect_format(path) == "hapt"
    ds = load_hapt(path)
    assert ds.sampling_rate == 50.0 and ds.channels == ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    assert ds.units == {**{f"acc_{a}": "g" for a in "xyz"}, **{f"gyro_{a}": "rad/s" for a in "xyz"}}
    np.testing.assert_allclose(ds.signals[3], [0.3, 1.3, 2.3, 3.3, 4.3, 5.3], rtol=1e-6)
    assert ds.recordings["recording"].tolist() == ["u1_r0", "u1_r1", "u10_r0"]
    assert ds.recordings["length"].tolist() == [6, 2, 2]
    assert ds.subject_ids == ["1", "10"] and list(ds.subjects.columns) == ["subject"]
    assert ds.activities[0] == "WALKING" and len(ds.activities) == 6
    np.testing.assert_array_equal(ds.labels, [-1, 0, 0, -1, -1, 4, -1, 1, 1, -1])  # transitions kept as unlabelled
    full = load_hapt(path, include_transitions=True)
    assert full.activities[6] == "STAND_TO_SIT" and full.activities[11] == "LIE_TO_STAND"
    np.testing.assert_array_equal(full.labels, [-1, 0, 0, 6, 6, 4, -1, 1, 1, 11])


def test_hapt_keep_unlabelled_false_splits_at_gaps(tmp_path: Path) -> None:
    ds = load_hapt(write_hapt(tmp_path / "h.csv.gz", hapt_frame()), keep_unlabelled=False)
    assert ds.recordings["recording"].tolist() == ["u1_r0_seg1", "u1_r0_seg2", "u1_r1_seg1", "u10_r0_seg1"]
    assert ds.recordings["length"].tolist() == [2, 1, 1, 1]
    assert (ds.labels != UNLABELLED).all()
    np.testing.assert_allclose(ds.signals[:, 0], [0.1, 0.2, 0.5, 0.7, 0.8], rtol=1e-6)


def test_hapt_errors_name_file_column_row(tmp_path: Path) -> None:
    frame = hapt_frame()
    frame.loc[9, "sequence"] = 10
    with pytest.raises(DataError, match=r"h1\.csv\.gz, column 'sequence', row 11: sequence jumps from 7 to 10"):
        load_hapt(write_hapt(tmp_path / "h1.csv.gz", frame))
    frame = hapt_frame()
    frame.loc[4, "gyro-y"] = np.nan
    with pytest.raises(DataError, match=r"column 'gyro-y', row 6: non-finite"):
        load_hapt(write_hapt(tmp_path / "h2.csv.gz", frame))
    with pytest.raises(DataError, match=r"h3\.csv\.gz, column 'label'.*missing column"):
        load_hapt(write_hapt(tmp_path / "h3.csv.gz", hapt_frame().drop(columns="label")))
    frame = hapt_frame().astype({"acc-x": object})
    frame.loc[2, "acc-x"] = "abc"
    with pytest.raises(DataError, match=r"column 'acc-x', row 4: not a number: 'abc'"):
        load_hapt(write_hapt(tmp_path / "h4.csv.gz", frame))
    frame = hapt_frame()
    frame.loc[7, ["user", "recording", "sequence"]] = [1, 0, 6]  # user 1 rec 0 reappears after rec 1
    with pytest.raises(DataError, match=r"row 9: rows of user 1 recording 0 are not contiguous"):
        load_hapt(write_hapt(tmp_path / "h5.csv.gz", frame))


# ---------------------------------------------------------------------------- UTD-MHAD
def write_utd(root: Path, keys: list[tuple[int, int, int]]) -> Path:
    (root / "Inertial").mkdir(parents=True)
    (root / "Skeleton").mkdir()
    for a, s, t in keys:
        n = 3 + a
        iner = np.column_stack([np.full(n, a), np.full(n, s), np.full(n, t), np.arange(n), np.zeros(n), np.ones(n)])
        scipy.io.savemat(root / "Inertial" / f"a{a}_s{s}_t{t}_inertial.mat", {"d_iner": iner})
        # joint j, axis c, frame f -> 100*j + 10*c + f
        skel = 100.0 * np.arange(20)[:, None, None] + 10.0 * np.arange(3)[None, :, None] + np.arange(2)[None, None, :]
        scipy.io.savemat(root / "Skeleton" / f"a{a}_s{s}_t{t}_skeleton.mat", {"d_skel": skel})
    return root


def test_utd_mhad_inertial_and_skeleton(tmp_path: Path) -> None:
    root = write_utd(tmp_path / "utd", [(10, 2, 1), (2, 1, 3), (27, 8, 4)])
    assert detect_format(root) == "utd_mhad"
    ds = load_dataset(root)
    assert ds.name == "utd_mhad_inertial" and ds.sampling_rate == 50.0
    assert ds.recordings["recording"].tolist() == ["a2_s1_t3", "a10_s2_t1", "a27_s8_t4"]  # numeric order
    assert ds.recordings["length"].tolist() == [5, 13, 30]
    assert ds.subject_ids == ["1", "2", "8"]
    assert ds.activities == list(ACTIONS) and len(ACTIONS) == 27 and ds.activities[26] == "squat"
    assert ds.labels[0] == 1 and ds.labels[-1] == 26
    np.testing.assert_array_equal(ds.signals[5], [10, 2, 1, 0, 0, 1])
    assert ds.units["gyro_x"] == "deg/s" and ds.units["acc_z"] == "g"

    sk = load_utd_mhad(root, modality="skeleton", name="utd")
    assert sk.name == "utd" and sk.sampling_rate == 30.0 and sk.n_channels == 60
    assert sk.channels[:6] == [f"{j}_{a}" for j in ("head", "shoulder_center") for a in "xyz"]
    assert sk.recordings["length"].tolist() == [2, 2, 2]
    hand_right_y = sk.channels.index("hand_right_y")
    assert sk.signals[1, hand_right_y] == 100 * 11 + 10 * 1 + 1  # joint 12 in the file, 2nd frame
    assert sk.channel_groups["left_leg"][:3] == ["hip_left_x", "hip_left_y", "hip_left_z"]
    assert set(sk.channel_groups) == {"head", "torso", "left_arm", "right_arm", "left_leg", "right_leg"}
    assert sum(len(v) for v in sk.channel_groups.values()) == 60


def test_utd_mhad_bad_file(tmp_path: Path) -> None:
    root = write_utd(tmp_path / "utd", [(1, 1, 1)])
    scipy.io.savemat(root / "Inertial" / "a1_s1_t2_inertial.mat", {"other": np.zeros((3, 6))})
    with pytest.raises(DataError, match=r"a1_s1_t2_inertial\.mat.*'d_iner' missing"):
        load_utd_mhad(root)
    with pytest.raises(ParameterError, match="modality"):
        load_utd_mhad(root, modality="depth")


# ---------------------------------------------------------------------------- tabular
MAPPING = """
[dataset]
name = "mine"
sampling_rate = 10.0
samples = "samples.csv"
subjects = "subjects.csv"
[columns]
subject = "person"
recording = "rec"
activity = "act"
time = "t"
channels = ["acc_*", "gyro"]
[channel_groups]
imu = ["acc_*"]
[units]
acc_x = "g"
"""


def tabular_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "person": ["01", "01", "01", "02", "02"],
        "rec": ["r1", "r1", "r2", "r3", "r3"],
        "t": [0.0, 0.1, 5.0, 0.0, 0.1],
        "act": ["walk", "", "10", "2", "walk"],
        "gyro": [1.0, 2.0, 3.0, 4.0, 5.0],
        "acc_y": [0.1, 0.2, 0.3, 0.4, 0.5],
        "acc_x": [1.1, 1.2, 1.3, 1.4, 1.5],
    })


def write_tabular(root: Path, frame: pd.DataFrame, mapping: str = MAPPING, samples: str = "samples.csv") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if samples.endswith(".parquet"):
        frame.to_parquet(root / samples, index=False)
    else:
        frame.to_csv(root / samples, index=False)
    (root / "subjects.csv").write_text("person,age,gender\n01,30,F\n02,70,M\n03,40,M\n")
    (root / "mapping.toml").write_text(mapping)
    return root / "mapping.toml"


def test_tabular_import(tmp_path: Path) -> None:
    mapping = write_tabular(tmp_path / "d", tabular_frame())
    assert detect_format(mapping) == "tabular" and detect_format(mapping.parent) == "tabular"
    ds = load_dataset(mapping.parent)
    assert ds.name == "mine" and ds.sampling_rate == 10.0
    assert ds.channels == ["acc_y", "acc_x", "gyro"]  # glob expanded in file column order
    np.testing.assert_allclose(ds.signals[2], [0.3, 1.3, 3.0], rtol=1e-6)
    assert ds.recordings["recording"].tolist() == ["r1", "r2", "r3"]
    assert ds.recordings["subject"].tolist() == ["01", "01", "02"]  # ids stay text: leading zero kept
    assert ds.recordings["length"].tolist() == [2, 1, 2]
    assert ds.activities == ["2", "10", "walk"]
    np.testing.assert_array_equal(ds.labels, [2, -1, 1, 0, 2])
    assert ds.subject_ids == ["01", "02"] and ds.subjects["age"].tolist() == [30, 70]  # 03 dropped
    assert ds.channel_groups == {"imu": ["acc_y", "acc_x"]} and ds.units == {"acc_x": "g"}


def test_tabular_defaults_and_parquet(tmp_path: Path) -> None:
    mapping = MAPPING.replace('name = "mine"\n', "").replace('subjects = "subjects.csv"\n', "")
    mapping = mapping.replace('recording = "rec"\n', "").replace('time = "t"\n', "")
    mapping = mapping.replace("samples.csv", "samples.parquet")
    frame = tabular_frame()
    frame["person"] = [1, 1, 1, 2, 2]
    ds = load_tabular(write_tabular(tmp_path / "my_data", frame, mapping, "samples.parquet"))
    assert ds.name == "my_data"
    assert ds.recordings["recording"].tolist() == ["1", "2"] and ds.subject_ids == ["1", "2"]
    assert list(ds.subjects.columns) == ["subject"]


def test_sample_data_generator_output_loads(tmp_path: Path) -> None:
    from anonaudit.data.synthetic import SampleSpec, write_sample_data

    write_sample_data(tmp_path, SampleSpec(n_subjects=4, n_trials=1, duration_s=2.0))
    ds = load_dataset(tmp_path)
    assert ds.name == "sample" and ds.n_samples == 4 * 5 * 100 and len(ds.recordings) == 20
    assert "age_group" in ds.subjects and ds.units


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(t=[0.0, 0.2, 5.0, 0.0, 0.1]),
         r"samples\.csv, column 't', row 3: wrong sampling rate: file has ~5 Hz, mapping says 10 Hz "
         r"\(recording 'r1'\)"),
        (lambda f: f.assign(person=["01", "09", "01", "02", "02"]),  # inside a recording
         r"samples\.csv, column 'person', row 3: unknown subject '09'"),
        (lambda f: f.assign(acc_x=[1.0, 2.0, np.nan, 3.0, 4.0]),
         r"samples\.csv, column 'acc_x', row 4: non-finite"),
        (lambda f: f.drop(columns="gyro"), r"samples\.csv, column 'gyro'.*matches no column"),
        (lambda f: f.drop(columns="act"), r"samples\.csv, column 'act'.*missing column"),
        (lambda f: f.assign(rec=["r1", "r2", "r1", "r3", "r3"], t=[0.0, 5.0, 0.1, 0.0, 0.1]),
         r"column 'rec', row 4: rows of recording 'r1' \(subject '01'\) are not contiguous"),
        (lambda f: f.assign(gyro=["1", "2", "x", "4", "5"]), r"column 'gyro', row 4: not a number: 'x'"),
    ],
)
def test_tabular_bad_samples(tmp_path: Path, change, message: str) -> None:
    mapping = write_tabular(tmp_path, change(tabular_frame()))
    with pytest.raises(DataError, match=message):
        load_tabular(mapping)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.replace("[units]", "[unit]"), r"key 'unit': unknown section"),
        (lambda m: m.replace('activity = "act"', 'activity = "act"\nlabel = "x"'), r"key 'columns.label': unknown key"),
        (lambda m: m.replace("sampling_rate = 10.0\n", ""), r"key 'dataset.sampling_rate': missing required key"),
        (lambda m: m.replace("sampling_rate = 10.0", 'sampling_rate = "10"'),
         r"key 'dataset.sampling_rate': wrong type str"),
        (lambda m: m.replace('channels = ["acc_*", "gyro"]', 'channels = "acc_x"'),
         r"key 'columns.channels': wrong type"),
        (lambda m: m.replace('imu = ["acc_*"]', 'imu = ["mag_*"]'), r"key 'channel_groups.imu': 'mag_\*' matches no"),
        (lambda m: m.replace("samples.csv", "samples.xlsx"), r"key 'dataset.samples': unsupported file type"),
        (lambda m: m.replace("[dataset]", "[dataset"), r"invalid TOML"),
    ],
)
def test_tabular_bad_mapping_names_file_and_key(tmp_path: Path, edit, message: str) -> None:
    mapping = write_tabular(tmp_path, tabular_frame(), edit(MAPPING))
    with pytest.raises(DataError, match=message) as err:
        load_tabular(mapping)
    assert err.value.file == str(mapping)


# ---------------------------------------------------------------------------- dispatch
def test_load_dataset_dispatch_and_errors(tmp_path: Path) -> None:
    mapping = write_tabular(tmp_path / "d", tabular_frame())
    saved = load_dataset(mapping).save(tmp_path / "saved")
    assert detect_format(saved) == "anonaudit"
    again = load_dataset(saved, name="renamed")
    assert again.name == "renamed" and again.n_samples == 5
    assert set(FORMATS) == {"sisfall", "hapt", "utd_mhad", "tabular", "anonaudit"}
    with pytest.raises(ParameterError, match="format"):
        load_dataset(mapping, "excel")
    with pytest.raises(ParameterError, match="'activities'.*tabular"):
        load_dataset(mapping, activities="adl")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"other\.csv: cannot tell the dataset format"):
        detect_format(tmp_path / "other.csv")
    with pytest.raises(DataError, match="does not exist"):
        detect_format(tmp_path / "missing")
