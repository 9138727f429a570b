"""Concurrent imports of one dataset: a losing import never deletes what a registered row points at."""

from __future__ import annotations

import multiprocessing
import shutil
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from anonaudit import api
from anonaudit.data.dataset import RECORDINGS_FILE, SAMPLES_FILE, SensorDataset
from anonaudit.data.loaders import load_dataset
from anonaudit.data.synthetic import SampleSpec, write_sample_data
from anonaudit.errors import ParameterError
from anonaudit.files import TMP_MARK, atomic_write, remove_unless, write_once
from anonaudit.jobs.datasets import open_dataset
from anonaudit.settings import get_settings
from anonaudit.store import datasets as dataset_store
from anonaudit.store import jobs as job_store
from factories import tiny_dataset

TINY = SampleSpec(n_subjects=2, n_trials=1, duration_s=1.0)
ROUNDS = 20
SUMMARY = {"sampling_rate": 10.0, "n_subjects": 2, "n_recordings": 2, "n_samples": 35, "n_channels": 2}


@pytest.fixture
def tiny_sample(tmp_path: Path) -> Path:
    write_sample_data(tmp_path / "tiny", TINY)
    return tmp_path / "tiny" / "mapping.toml"


def _check_store(shape: tuple[int, int]) -> None:
    """Every registered dataset opens with the right shape, and its folder is all the data home holds."""
    rows = dataset_store.list_datasets()
    for row in rows:
        assert open_dataset(row["name"]).signals.shape == shape, row["name"]
    folders = sorted(p.name for p in get_settings().datasets_dir.iterdir())
    assert folders == sorted(Path(row["storage_path"]).name for row in rows)
    assert not [name for name in folders if TMP_MARK in name]
    assert dataset_store.unreadable_datasets() == []


def _logged(job: dict[str, Any], text: str) -> bool:
    return any(text in log["message"] for log in job_store.job_logs(job["id"]))


def _race(mapping: str, rounds: int, start: Barrier, done: Barrier, outcomes: Queue) -> None:
    """One racer: import ``mapping`` as ``race<i>`` the moment both racers are ready, ``rounds`` times."""
    for i in range(rounds):
        start.wait()
        try:
            outcomes.put(api.import_dataset(mapping, name=f"race{i}")["status"])
        except Exception as exc:  # the outcome is checked by the test, in the parent
            outcomes.put(f"{type(exc).__name__}: {exc}")
        done.wait()


def test_concurrent_imports_keep_every_registered_dataset_readable(db_url, tiny_sample):
    # Two real processes against one database; starting a process costs seconds (imports), so each
    # races many rounds, a barrier lining up both imports of a round, and the parent checks in between.
    shape = load_dataset(tiny_sample).signals.shape
    dataset_store.list_datasets()  # creates the schema before the racers start
    spawn = multiprocessing.get_context("spawn")
    start, done, outcomes = spawn.Barrier(3), spawn.Barrier(3), spawn.Queue()
    racers = [spawn.Process(target=_race, args=(str(tiny_sample), ROUNDS, start, done, outcomes)) for _ in range(2)]
    for racer in racers:
        racer.start()
    began = time.monotonic()
    try:
        for i in range(ROUNDS):
            start.wait(timeout=120)
            done.wait(timeout=120)
            results = [outcomes.get(timeout=10) for _ in racers]
            assert results == ["succeeded", "succeeded"], f"round {i}: {results}"
            _check_store(shape)
            assert dataset_store.find_dataset(f"race{i}") is not None
    finally:
        start.abort()  # a failed round must not leave the racers waiting for the next
        done.abort()
        for racer in racers:
            racer.join(timeout=30)
            if racer.is_alive():
                racer.terminate()
    assert [racer.exitcode for racer in racers] == [0, 0]
    jobs = job_store.list_jobs(kind="import", limit=2 * ROUNDS)
    raced = sum(_logged(job, "registered concurrently") for job in jobs)
    print(f"{ROUNDS} rounds in {time.monotonic() - began:.1f} s; both racers passed the first look in {raced}")
    assert raced > 0  # the race was run, not just two imports one after the other


def test_losing_import_that_fails_keeps_the_winners_folder(db_url, tiny_sample, monkeypatch):
    # The race, step by step: the loser looked before the winner registered, then its registration fails.
    api.import_dataset(tiny_sample, name="d")

    def register_fails(*args, **kwargs):
        raise ParameterError("name", "the database went away")

    with monkeypatch.context() as patch:
        patch.setattr(dataset_store, "find_dataset", lambda *args, **kwargs: None)
        patch.setattr(dataset_store, "register_dataset", register_fails)
        with pytest.raises(ParameterError, match="went away"):
            api.import_dataset(tiny_sample, name="d")
    _check_store(load_dataset(tiny_sample).signals.shape)


def test_losing_import_of_the_same_data_reuses_the_winners_row(db_url, tiny_sample, monkeypatch):
    winner = api.import_dataset(tiny_sample, name="d")
    with monkeypatch.context() as patch:
        patch.setattr(dataset_store, "find_dataset", lambda *args, **kwargs: None)
        loser = api.import_dataset(tiny_sample, name="d")
    assert loser["status"] == "succeeded" and loser["result"] == winner["result"]
    assert _logged(loser, "registered concurrently with identical content; reusing it")
    _check_store(load_dataset(tiny_sample).signals.shape)


def test_losing_import_of_other_data_is_one_clear_error(db_url, tiny_sample, tmp_path, monkeypatch):
    api.import_dataset(tiny_sample, name="d")
    write_sample_data(tmp_path / "other", SampleSpec(n_subjects=3, n_trials=1, duration_s=1.0))
    with monkeypatch.context() as patch:
        patch.setattr(dataset_store, "find_dataset", lambda *args, **kwargs: None)
        with pytest.raises(ParameterError, match="a different dataset named 'd' is already registered"):
            api.import_dataset(tmp_path / "other" / "mapping.toml", name="d")
    _check_store(load_dataset(tiny_sample).signals.shape)  # the loser's own folder is gone, the winner's kept


@pytest.mark.parametrize("content", ["a", "b"])
def test_registration_that_loses_on_the_unique_name(db_url, monkeypatch, content):
    # Both registrations looked before either inserted (as on PostgreSQL): the insert hits the unique name.
    stored = get_settings().datasets_dir / "demo-1"
    winner = dataset_store.register_dataset("demo", "tabular", storage_path=str(stored), summary=SUMMARY,
                                            content_sha256="a" * 64)
    real_find = dataset_store._find
    looks: list[str | int] = []

    def blind_first_look(session, name_or_id):
        looks.append(name_or_id)
        return None if len(looks) == 1 else real_find(session, name_or_id)

    monkeypatch.setattr(dataset_store, "_find", blind_first_look)
    register = dict(storage_path=str(stored), summary=SUMMARY, content_sha256=content * 64)
    if content == "a":
        assert dataset_store.register_dataset("demo", "tabular", **register) == winner
    else:
        with pytest.raises(ParameterError, match="a different dataset named 'demo' is already registered"):
            dataset_store.register_dataset("demo", "tabular", **register)
    assert len(looks) == 2


def test_reimport_writes_a_damaged_copy_again(db_url, tiny_sample):
    first = api.import_dataset(tiny_sample, name="d")
    (Path(first["result"]["storage_path"]) / SAMPLES_FILE).unlink()
    assert dataset_store.unreadable_datasets() == ["d"]
    again = api.import_dataset(tiny_sample, name="d")
    assert again["result"]["id"] == first["result"]["id"]
    assert _logged(again, "unreadable") and _logged(again, "writing them again")
    _check_store(load_dataset(tiny_sample).signals.shape)


def test_registration_after_a_concurrent_removal_writes_the_folder_again(db_url, tiny_sample, monkeypatch):
    # A removal that looked for rows just before this import's row was committed deletes the folder.
    real_register = dataset_store.register_dataset

    def register_then_removed(*args, **kwargs):
        row = real_register(*args, **kwargs)
        shutil.rmtree(row["storage_path"])
        return row

    monkeypatch.setattr(dataset_store, "register_dataset", register_then_removed)
    job = api.import_dataset(tiny_sample, name="d")
    assert _logged(job, "writing them again")
    _check_store(load_dataset(tiny_sample).signals.shape)


def test_removal_spares_a_folder_a_registered_row_points_at(db_url):
    stored = tiny_dataset().save(get_settings().datasets_dir / "shared")
    for name in ("one", "two"):
        dataset_store.register_dataset(name, "tabular", storage_path=str(stored), summary=SUMMARY,
                                       content_sha256=name[0] * 64)
    dataset_store.delete_dataset("one")
    assert stored.is_dir() and dataset_store.unreadable_datasets() == []
    assert not dataset_store.remove_files(str(stored))
    dataset_store.delete_dataset("two")
    assert not stored.exists()


def test_unreadable_datasets_names_missing_and_damaged_copies(db_url):
    home = get_settings().datasets_dir
    for name in ("good", "gone", "truncated", "no_recordings"):
        path = tiny_dataset().save(home / name)
        dataset_store.register_dataset(name, "tabular", storage_path=str(path), summary=SUMMARY,
                                       content_sha256="a" * 64)
    shutil.rmtree(home / "gone")
    samples = home / "truncated" / SAMPLES_FILE
    samples.write_bytes(samples.read_bytes()[:-20])
    (home / "no_recordings" / RECORDINGS_FILE).unlink()
    assert dataset_store.unreadable_datasets() == ["gone", "no_recordings", "truncated"]
    assert SensorDataset.check_files(home / "good") is None
    assert "dataset.json" in SensorDataset.check_files(home / "gone")


def test_write_once_keeps_a_good_copy_and_replaces_a_damaged_one(tmp_path):
    place = tmp_path / "place"

    def write(text: str):
        def into(folder: Path) -> None:
            folder.mkdir()
            (folder / "file").write_text(text)
        return into

    def good(path: Path) -> bool:
        return (path / "file").is_file()

    assert write_once(place, write("first"), keep=good)
    assert not write_once(place, write("second"), keep=good)
    assert (place / "file").read_text() == "first"
    (place / "file").unlink()
    assert write_once(place, write("third"), keep=good)
    assert (place / "file").read_text() == "third"
    assert atomic_write(place, write("fourth")) == place and (place / "file").read_text() == "fourth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["place"]


def test_atomic_write_of_a_folder_that_fails_keeps_the_old_one(tmp_path):
    place = tiny_dataset().save(tmp_path / "place")

    def fails(folder: Path) -> None:
        folder.mkdir()
        (folder / "half").write_text("…")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(place, fails)
    assert SensorDataset.load(place).signals.shape == tiny_dataset().signals.shape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["place"]


def test_remove_unless_puts_back_what_came_into_use(tmp_path):
    place = tiny_dataset().save(tmp_path / "place")
    answers = iter([False, True])
    assert not remove_unless(place, lambda: next(answers))  # in use by the second look: put back
    assert SensorDataset.check_files(place) is None
    assert not remove_unless(place, lambda: True)

    looks = iter([False])

    def unused_then_cannot_tell() -> bool:
        if next(looks, True):
            raise OSError("database unreachable")
        return False

    with pytest.raises(OSError, match="unreachable"):  # the second look fails: put back, not deleted
        remove_unless(place, unused_then_cannot_tell)
    assert SensorDataset.check_files(place) is None
    assert remove_unless(place, lambda: False) and not place.exists()
    assert not remove_unless(place, lambda: False)  # nothing left to remove
    assert list(tmp_path.iterdir()) == []
