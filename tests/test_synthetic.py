import hashlib
from pathlib import Path

import numpy as np

from anonaudit.data.synthetic import ACTIVITIES, SampleSpec, generate_frames, write_sample_data

REPO = Path(__file__).resolve().parents[1]


def test_committed_sample_data_is_reproduced_byte_for_byte(tmp_path):
    digests = write_sample_data(tmp_path)
    for name, digest in digests.items():
        committed = REPO / "sample_data" / name
        assert committed.is_file(), f"{committed} missing: run `anonaudit data sample`"
        assert hashlib.sha256(committed.read_bytes()).hexdigest() == digest, name
    assert sum((REPO / "sample_data" / n).stat().st_size for n in digests) < 10 * 2**20


def test_sample_data_has_planted_signatures():
    samples, subjects = generate_frames(SampleSpec(n_subjects=12, n_trials=1, duration_s=4.0))
    assert len(subjects) == 12 and set(samples["activity"]) == set(ACTIVITIES)
    assert {"age", "gender", "height_cm", "weight_kg"} <= set(subjects.columns)
    # taller people -> wrists further apart in the skeleton (height leaks, as in real data)
    width = samples.groupby("subject")["wrist_left_y"].mean().reindex(subjects["subject"]).to_numpy()
    assert np.corrcoef(width, subjects["height_cm"])[0, 1] > 0.9
    # walking has higher acceleration variance than standing
    var = samples.groupby("activity")["acc_z"].std()
    assert var["walking"] > 3 * var["standing"]
