"""The run-directory contract: lock, fingerprint, ordered atomic stages.

Every kerasbert run (fine-tuning, further pre-training, multi-task, each
cell of a grid) writes into one directory owned by a `RunDirectory`:

- a lock (`.lock`, an exclusive `flock`): a second process on the same
  directory fails at once with the holder's pid, host and command. The
  kernel drops the lock when its process dies, so the lock of a killed run
  is taken over without any clean-up;
- a fingerprint (`run.json`): every setting that changes the result and
  the identity of the data. The same settings again resume or finish the
  run; other settings are refused with the list of differences, unless
  `overwrite` clears the directory first (it never clears the same run);
- stages (`run.json["stages"]`): what is finished (training, test,
  saving, export, `metrics.json`) with the figures each produced, so a
  rerun does only the missing stages and never repeats finished training;
- atomic writes: every file and directory is written under a temporary
  `.partial-NAME` and renamed into place, so a kill leaves either the old
  or the new version, never half of one.
"""

import contextlib
import datetime
import fcntl
import json
import math
import os
import shutil
import socket
import sys
import tempfile

from absl import logging

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
PARTIAL_PREFIX = ".partial-"
# The settings key naming the layout of a run directory's files (checkpoints,
# stages); a directory of another format is refused, never resumed.
RUN_FORMAT_KEY = "run_format"


class RunDirectoryError(RuntimeError):
    """A run directory is locked, or holds a run with other settings."""


def finite_json(value):
    """`value` with every non-finite float replaced by None (valid JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it to `path` on success.

    The temporary name keeps `path`'s suffix (`.keras`, `.weights.h5` …), so
    writers that check suffixes accept it. An existing `path` (file or
    directory) is replaced; on an exception the temporary is removed and
    `path` is left as it was.
    """
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, PARTIAL_PREFIX + name)
    _remove(partial)
    try:
        yield partial
    except BaseException:
        _remove(partial)
        raise
    if os.path.isfile(partial):
        descriptor = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(descriptor)  # on disk before the name points at it
        finally:
            os.close(descriptor)
    if os.path.isdir(partial) and os.path.exists(path):
        _remove(path)  # a directory cannot be renamed over a non-empty one
    os.replace(partial, path)


def write_json(path, value):
    """Write `value` as JSON to `path` atomically; non-finite floats become null."""
    with atomic_path(path) as partial:
        with open(partial, "w", encoding="utf-8") as file:
            json.dump(finite_json(value), file, indent=2, allow_nan=False, default=str)
            file.flush()
            os.fsync(file.fileno())


def read_json(path):
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def _canonical(value):
    # Settings as JSON would store them, so a fresh value compares equal to
    # one read back from run.json (tuples become lists, objects strings).
    return json.loads(json.dumps(finite_json(value), default=str))


def setting_differences(old, new):
    """`["name: old → new", …]` for every key whose value differs."""
    differences = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, "<unset>"), new.get(key, "<unset>")
        if before != after:
            differences.append(f"{key}: {before!r} → {after!r}")
    return differences


class RunDirectory:
    """One run's output directory: lock, fingerprint, stages, atomic writes.

    Use it as a context manager around the whole run. Entering takes the
    lock, then compares `settings` and `data` with the `run.json` already
    there: equal, the run continues where it stopped (`done(stage)` says
    what is finished); different, a `RunDirectoryError` lists each
    difference and names `overwrite`. With `overwrite=True` the directory is
    emptied first. A directory this run created is removed again when the
    run fails before finishing any stage or checkpoint, so a run that fails
    on its inputs leaves nothing behind.

    Only the chief of a multi-worker job (`chief=True`) locks and writes the
    directory. The other workers read it (the fingerprint, the finished
    stages, the chief's checkpoints on a shared file system) and make the
    same decisions, but write into a private scratch directory that is
    deleted at exit: every worker runs the same saving code, since saving
    may take part in collectives, and only the chief's files count.

    Args:
        path: str. The run directory.
        settings: dict. Every setting that changes the result (JSON-able;
            other values are compared by their `str`).
        data: dict. The identity of each input (see `kerasbert.training.
            fingerprint`), compared like `settings`.
        overwrite: bool. Clear a directory that holds another run.
        chief: bool. Whether this process owns `path`.

    Examples:
    ```python
    import os, tempfile
    from kerasbert.training.run_directory import RunDirectory
    path = os.path.join(tempfile.mkdtemp(), "run")
    with RunDirectory(path, settings={"learning_rate": 1e-3}, data={}) as run:
        if not run.done("trained"):
            run.finish("trained", {"train_seconds": 1.0})
    with RunDirectory(path, settings={"learning_rate": 1e-3}, data={}) as run:
        run.done("trained")  # True: a rerun skips the finished stage
    ```
    """

    def __init__(self, path, settings, data, *, overwrite=False, chief=True):
        if not path:
            raise ValueError("`output_dir` must be a directory path. Received: an empty value")
        self.path = os.path.abspath(path)
        self.settings = _canonical(settings)
        self.data = _canonical(data)
        self.overwrite = overwrite
        self.chief = chief
        self.record = None
        self._lock_file = None
        self._created = False
        self._new_run = False
        self._scratch = None

    # === Lifecycle ===

    def __enter__(self):
        if not self.chief:
            self._scratch = tempfile.mkdtemp(prefix=f"kerasbert_worker_{os.getpid()}_")
            logging.info("Non-chief worker: reading %s, writing to %s.", self.path, self._scratch)
            self._load_or_start()
            return self
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunDirectoryError(f"output_dir {self.path} exists and is not a directory.")
        self._created = not os.path.exists(self.path)
        os.makedirs(self.path, exist_ok=True)
        try:
            self._lock()
            self._load_or_start()
        except BaseException:
            self._release(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, traceback):
        self._release(failed=exc_type is not None)
        return False

    def _lock(self):
        lock_path = os.path.join(self.path, LOCK_FILE)
        self._lock_file = open(lock_path, "a+", encoding="utf-8")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "another process"
            self._lock_file.close()
            self._lock_file = None
            raise RunDirectoryError(
                f"output_dir {self.path} is in use by {holder}. Wait for that run to "
                "finish or stop it, or choose another --output_dir."
            ) from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        started = datetime.datetime.now().isoformat(timespec="seconds")
        command = " ".join(sys.argv)[:300]
        self._lock_file.write(
            f"process {os.getpid()} on {socket.gethostname()} (since {started}: {command})"
        )
        self._lock_file.flush()

    def _release(self, failed):
        if not self.chief:
            shutil.rmtree(self._scratch, ignore_errors=True)
            return
        if failed and self._new_run and not self._has_progress():
            # A run that failed before any progress leaves nothing behind.
            if self._created:
                shutil.rmtree(self.path, ignore_errors=True)
            else:
                _remove(os.path.join(self.path, RUN_FILE))
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _has_progress(self):
        if self.record and self.record.get("stages"):
            return True
        return any(
            name not in (LOCK_FILE, RUN_FILE) and not name.startswith(PARTIAL_PREFIX)
            for name in os.listdir(self.path)
        ) if os.path.isdir(self.path) else False

    def _new_record(self):
        return {"settings": self.settings, "data": self.data, "stages": {}}

    def _load_or_start(self):
        run_file = os.path.join(self.path, RUN_FILE)
        if not self.chief:
            # The chief starts the directory; a worker only reads what is
            # there, so that it skips exactly the stages the chief skips.
            if not os.path.exists(run_file) or (
                    self.overwrite and not self._holds_this_run(run_file)):
                self.record = self._new_record()
                return
        if self.overwrite and not self._holds_this_run(run_file):
            for name in os.listdir(self.path):
                if name != LOCK_FILE:
                    _remove(os.path.join(self.path, name))
        elif os.path.exists(run_file):
            try:
                record = read_json(run_file)
            except (OSError, json.JSONDecodeError) as error:
                raise RunDirectoryError(
                    f"{run_file} is unreadable ({error}); pass --overwrite to start afresh."
                ) from None
            held_format = record.get("settings", {}).get(RUN_FORMAT_KEY)
            if RUN_FORMAT_KEY in self.settings and held_format != self.settings[RUN_FORMAT_KEY]:
                raise RunDirectoryError(
                    f"output_dir {self.path} holds a run of an earlier kerasbert (run format "
                    f"{held_format or 1}; this version writes {self.settings[RUN_FORMAT_KEY]}), "
                    "which it does not resume. Pass --overwrite to clear it, or choose another "
                    "--output_dir."
                )
            differences = setting_differences(
                record.get("settings", {}), self.settings
            ) + setting_differences(record.get("data", {}), self.data)
            if differences:
                raise RunDirectoryError(
                    f"output_dir {self.path} holds a run with other settings: "
                    + "; ".join(differences)
                    + ". Pass --overwrite (overwrite=True) to clear it, or choose another "
                    "--output_dir."
                )
            self.record = record
            return
        elif not self.chief:
            return
        elif any(not n.startswith(PARTIAL_PREFIX) and n != LOCK_FILE
                 for n in os.listdir(self.path)):
            raise RunDirectoryError(
                f"output_dir {self.path} is not empty and holds no {RUN_FILE}: it is not a "
                "kerasbert run of this version. Pass --overwrite to clear it, or choose "
                "another --output_dir."
            )
        self.record = self._new_record()
        write_json(run_file, self.record)
        self._new_run = True

    def _holds_this_run(self, run_file):
        # `overwrite` clears only another run: the same settings resume.
        try:
            record = read_json(run_file)
        except (OSError, json.JSONDecodeError):
            return False
        return not (setting_differences(record.get("settings", {}), self.settings)
                    or setting_differences(record.get("data", {}), self.data))

    # === Stages ===

    def done(self, stage):
        """Whether `stage` finished in this or an earlier process."""
        return stage in self.record["stages"]

    def result(self, stage):
        """The figures `finish(stage, …)` recorded."""
        return self.record["stages"][stage]

    def finish(self, stage, result=None):
        """Record `stage` as finished, with its figures, atomically."""
        self.record["stages"][stage] = finite_json(result or {})
        if self.chief:
            write_json(os.path.join(self.path, RUN_FILE), self.record)

    @property
    def finished(self):
        """Whether the whole run is done (its `metrics.json` is written)."""
        return self.done("metrics")

    # === Files ===

    def file(self, *parts):
        """The path of `parts` inside the run directory."""
        return os.path.join(self.path, *parts)

    def atomic(self, *parts):
        """`atomic_path` for `parts` inside the run directory (on a non-chief
        worker: inside its scratch directory)."""
        if not self.chief:
            return atomic_path(os.path.join(self._scratch, *parts))
        return atomic_path(self.file(*parts))

    def write_json(self, name, value):
        """Write `value` as `name` (chief only); return it as read back."""
        if self.chief:
            write_json(self.file(name), value)
        return _canonical(value)
