import json
import os
import signal
import subprocess
import sys

import pytest

from kerasbert.training.run_directory import RunDirectory
from kerasbert.training.run_directory import RunDirectoryError
from kerasbert.utils.files import atomic_path
from kerasbert.utils.files import write_json

SETTINGS = {"learning_rate": 1e-3, "layers": [1, 2], "seed": 0}
DATA = {"train": {"sha256": "abc", "examples": 10}}


def test_second_run_on_a_locked_directory_is_refused_with_the_holder(tmp_path):
    path = str(tmp_path / "run")
    with RunDirectory(path, SETTINGS, DATA):
        with pytest.raises(RunDirectoryError, match=rf"in use by process {os.getpid()} on "):
            with RunDirectory(path, SETTINGS, DATA):
                pass
    with RunDirectory(path, SETTINGS, DATA):  # released on exit
        pass


def test_the_lock_survives_its_file_being_deleted(tmp_path):
    path = str(tmp_path / "run")
    with RunDirectory(path, SETTINGS, DATA):
        os.remove(os.path.join(path, ".lock"))
        with pytest.raises(RunDirectoryError, match="in use by another process"):
            with RunDirectory(path, SETTINGS, DATA):
                pass


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         "d = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(d, fcntl.LOCK_EX)\n"
         "open(os.path.join(sys.argv[1], '.lock'), 'w').write('process 4242 on elsewhere')\n"
         "print('locked', flush=True)\n"
         "time.sleep(120)",
         str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirectoryError, match="in use by process 4242 on elsewhere"):
            with RunDirectory(str(path), SETTINGS, DATA):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with RunDirectory(str(path), SETTINGS, DATA) as run:
        assert run.record["settings"] == SETTINGS


def test_other_settings_are_refused_with_each_difference(tmp_path):
    path = str(tmp_path / "run")
    with RunDirectory(path, SETTINGS, DATA) as run:
        run.finish("trained", {"seconds": 1.0})
    changed = {**SETTINGS, "learning_rate": 2e-3, "layers": (1, 3)}
    with pytest.raises(RunDirectoryError) as error:
        with RunDirectory(path, changed, {"train": {"sha256": "def", "examples": 10}}):
            pass
    message = str(error.value)
    assert "\n" not in message
    assert "learning_rate: 0.001 → 0.002" in message
    assert "layers: [1, 2] → [1, 3]" in message
    assert "train: {'sha256': 'abc'" in message and "--overwrite" in message
    # The same settings (a tuple equals the list stored in run.json) resume.
    with RunDirectory(path, {**SETTINGS, "layers": (1, 2)}, DATA) as run:
        assert run.done("trained") and run.result("trained") == {"seconds": 1.0}
        assert not run.finished


def test_overwrite_clears_the_directory(tmp_path):
    path = str(tmp_path / "run")
    with RunDirectory(path, SETTINGS, DATA) as run:
        run.write_json("metrics.json", {"old": True})
        run.finish("metrics")
    with RunDirectory(path, {**SETTINGS, "seed": 1}, DATA, overwrite=True) as run:
        assert not run.done("metrics")
        # Cleared only when the new run begins (its checks passed) ...
        assert "metrics.json" in os.listdir(path)
        run.begin()
        assert sorted(os.listdir(path)) == [".lock", "run.json"]
    # ... so a new run that fails before it begins leaves the old one.
    with RunDirectory(path, {**SETTINGS, "seed": 1}, DATA) as run:
        run.write_json("metrics.json", {"old": True})
    with pytest.raises(ValueError, match="bad setting"):
        with RunDirectory(path, {**SETTINGS, "seed": 2}, DATA, overwrite=True):
            raise ValueError("bad setting")
    assert json.loads(open(os.path.join(path, "metrics.json")).read()) == {"old": True}


def test_overwrite_never_clears_the_same_run(tmp_path):
    path = str(tmp_path / "run")
    with RunDirectory(path, SETTINGS, DATA) as run:
        run.finish("trained", {"seconds": 2.0})
    with RunDirectory(path, SETTINGS, DATA, overwrite=True) as run:
        assert run.result("trained") == {"seconds": 2.0}


def test_a_run_failing_before_any_progress_leaves_nothing(tmp_path):
    path = tmp_path / "run"
    with pytest.raises(ValueError, match="bad input"):
        with RunDirectory(str(path), SETTINGS, DATA):
            raise ValueError("bad input")
    assert not path.exists()
    # In a directory that existed before, only the run's own record goes.
    path.mkdir()
    with pytest.raises(ValueError):
        with RunDirectory(str(path), SETTINGS, DATA):
            raise ValueError("bad input")
    assert not (path / "run.json").exists()


def test_a_run_failing_after_progress_keeps_it(tmp_path):
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        with RunDirectory(str(path), SETTINGS, DATA) as run:
            (path / "checkpoints").mkdir()
            raise KeyboardInterrupt
    assert (path / "run.json").exists() and (path / "checkpoints").exists()


def test_a_foreign_non_empty_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="not empty and holds no run.json"):
        with RunDirectory(str(tmp_path), SETTINGS, DATA):
            pass
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_atomic_path_keeps_the_old_version_until_the_new_one_is_complete(tmp_path):
    target = tmp_path / "saved_model"
    target.mkdir()
    (target / "v").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as partial:
            os.makedirs(partial)
            (tmp_path / ".partial-saved_model" / "v").write_text("half")
            raise RuntimeError("killed mid-export")
    assert (target / "v").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["saved_model"]
    with atomic_path(str(target)) as partial:
        assert partial.endswith(".partial-saved_model")
        os.makedirs(partial)
        (tmp_path / ".partial-saved_model" / "v").write_text("new")
    assert (target / "v").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["saved_model"]


def test_write_json_stores_non_finite_numbers_as_null(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(str(path), {"loss": float("nan"), "rows": [float("inf"), 1.5]})
    assert json.loads(path.read_text()) == {"loss": None, "rows": [None, 1.5]}
