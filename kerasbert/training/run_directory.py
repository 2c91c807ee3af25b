"""The run-directory contract: lock, fingerprint, ordered atomic stages.

Every kerasbert run (fine-tuning, further pre-training, multi-task, each
cell of a grid) writes into one directory owned by a `RunDirectory`:

- a lock (an exclusive `flock` on the directory itself; `.lock` names the
  holder): a second process on the same directory fails at once with the
  holder's pid, host and command, even if `.lock` was deleted. The kernel
  drops the lock when its process dies, so the lock of a killed run is
  taken over without any clean-up;
- a fingerprint (`run.json`): every setting that changes the result and
  the identity of the data. The same settings again resume or finish the
  run; other settings are refused with the list of differences, unless
  `overwrite` clears the directory first (it never clears the same run);
- stages (`run.json["stages"]`): what is finished (training, test,
  saving, export, `metrics.json`) with the figures each produced, so a
  rerun does only the missing stages and never repeats finished training;
- atomic writes (`kerasbert.utils.files`): every file and directory is
  written under a temporary `.partial-NAME` and renamed into place, so a
  kill leaves either the old or the new version, never half of one.
"""

import datetime
import fcntl
import fnmatch
import json
import os
import re
import shutil
import socket
import sys
import tempfile

from absl import logging

from kerasbert.utils.files import PARTIAL_PREFIX
from kerasbert.utils.files import atomic_path
from kerasbert.utils.files import file_digest
from kerasbert.utils.files import finite_json
from kerasbert.utils.files import read_json
from kerasbert.utils.files import remove_path
from kerasbert.utils.files import write_json

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
# The settings key naming the layout of a run directory's files (checkpoints,
# stages); a directory of another format is refused, never resumed.
RUN_FORMAT_KEY = "run_format"
# What kerasbert runs write into a run directory (patterns): `--overwrite`
# clears a directory only if it holds nothing else, at any depth.
RUN_FILES = (
    RUN_FILE, LOCK_FILE, f"{PARTIAL_PREFIX}*", "metrics.json", "history.csv", "logs",
    "checkpoints", "preset", "saved_model", "saved_model_*", "int8", "joint", "finetuned_*",
    "shared_backbone", "backbone", "snapshots",
)
# The names among those that are not patterns: all a directory without a
# ledger of entries may hold (a multi-task run's `saved_model_NAME/` needs
# its ledger to be told from a user's `saved_model_backup/`).
_FIXED_RUN_FILES = tuple(name for name in RUN_FILES if "*" not in name)
# Inside those: the folders and the file names of checkpoints (run format 1's
# `.npz` too, which --overwrite clears), TensorBoard logs, keras-hub presets,
# SavedModels, int8 classifiers and nested runs.
RUN_SUBFOLDERS = RUN_FILES + (
    "step-*", "step_*", "best", "train", "validation", "assets", "tokenizer", "variables",
)
RUN_SUBFOLDER_FILES = (
    RUN_FILE, LOCK_FILE, "metrics.json", "history.csv", "latest.json", "state.json",
    "step-*.npz", "variables.data-*", "variables.index", "checkpoint", "events.out.tfevents.*",
    "config.json", "metadata.json", "*.weights.h5", "*.weights.json", "task.json",
    "preprocessor.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json", "vocab.txt",
    "*.spm", "merges.txt", "saved_model.pb", "fingerprint.pb", "model.tflite", "int8.json",
)
# Work in progress that a kill may leave (a half-written file or folder, a
# worker's temporary checkpoint): kerasbert's own, whatever is inside.
TEMPORARY = (f"{PARTIAL_PREFIX}*", ".workertemp_*")


def _manifest(path):
    """`{relative path: [size, SHA-256]}` of a file (`"."`) or of every file
    below a folder, work in progress left out; None when `path` does not
    exist."""
    names = _manifest_names(path)
    if names is None:
        return None
    files = {}
    for name in names:
        try:
            files[name] = _fingerprint(path if name == "." else os.path.join(path, name))
        except FileNotFoundError:  # removed while listed: not part of the result
            continue
    return files


def _manifest_names(path):
    """The files a manifest of `path` lists: `["."]` for a file, relative
    paths below a folder (work in progress left out), None if missing."""
    if os.path.isfile(path):
        return ["."]
    if not os.path.isdir(path):
        return None
    names = []
    for root, folders, files in os.walk(path):
        folders[:] = [name for name in folders if not _owned(name, TEMPORARY)]
        names += [os.path.relpath(os.path.join(root, name), path) for name in files
                  if not _owned(name, TEMPORARY)]
    return names


def _fingerprint(path):
    # Size and content: a flipped byte or a same-size edit is a change.
    return [os.lstat(path).st_size, file_digest(path)]


def _unchanged(path, recorded):
    """Whether the file or folder at `path` still holds what its manifest
    `recorded` lists (ledgers written before digests hold sizes only)."""
    names = _manifest_names(path)
    if names is None or set(names) != set(recorded):
        return False
    for name, value in recorded.items():
        file = path if name == "." else os.path.join(path, name)
        size = value if isinstance(value, int) else value[0]
        try:
            if os.lstat(file).st_size != size or (
                    not isinstance(value, int) and _fingerprint(file) != value):
                return False
        except FileNotFoundError:  # removed while checked
            return False
    return True


def _as_manifests(files):
    """A stage's recorded files as `{name: manifest or None}`: a list (a
    ledger of names only) checks existence alone."""
    return dict.fromkeys(files) if isinstance(files, list) else files


def _owned(name, patterns):
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def _ledger(path):
    """`run.json` of the run in `path` when it holds a ledger of entries:
    `(entries, {top-level name: manifest of a finished stage})`; None for
    a directory without one (no run.json, an unreadable one, or one
    written before entries were recorded)."""
    try:
        record = read_json(os.path.join(path, RUN_FILE))
    except (OSError, ValueError):
        return None
    entries = record.get("entries") if isinstance(record, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        return None
    stages = record.get("stages") if isinstance(record.get("stages"), dict) else {}
    files = record.get("files") if isinstance(record.get("files"), dict) else {}
    manifests = {}
    for stage, outputs in files.items():
        if stage in stages and isinstance(outputs, dict):
            manifests.update({name: manifest for name, manifest in outputs.items()
                              if isinstance(manifest, dict) and os.sep not in name})
    return set(entries), manifests


def foreign_files(path):
    """Paths under the run directory `path` (relative, at any depth) that the
    run did not write: links, and names outside the run's ledger.

    At the top, a run's `run.json` lists every name it wrote (`entries`),
    so only those, `run.json`, `.lock` and their `.partial-` versions (a
    kill's work in progress) are the run's: a user's `saved_model_backup/`
    or `.partial-mine/` is foreign though its name looks like the run's.
    Inside the folder of a finished stage (`preset/`, `saved_model/`,
    `int8/`, the finished `checkpoints/`), only the files its manifest
    lists are the run's; inside folders still being written (checkpoints
    and logs of an unfinished training), names outside their layout are
    foreign. A nested run (a multi-task run's per-task runs) is read by its
    own ledger. Without a readable ledger of entries (a run.json of an
    earlier kerasbert, a damaged or missing one), only the fixed names of
    the layout count, never one that merely looks like them."""
    ledger = _ledger(path)
    foreign = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        ours = (ledger[0] if ledger else set(_FIXED_RUN_FILES)) | {RUN_FILE, LOCK_FILE}
        owned = name in ours or (name.startswith(PARTIAL_PREFIX)
                                 and name[len(PARTIAL_PREFIX):] in ours)
        if os.path.islink(full) or not owned:
            foreign.append(name)
        elif not os.path.isdir(full) or name.startswith(PARTIAL_PREFIX):
            continue  # a file of the run, or a kill's half-written output
        elif os.path.isfile(os.path.join(full, RUN_FILE)) and _ledger(full) is not None:
            foreign += [os.path.join(name, inner) for inner in foreign_files(full)]
        elif ledger and isinstance(ledger[1].get(name), dict):
            listed = set(ledger[1][name])
            foreign += [os.path.join(name, inner) for inner in _unlisted(full, listed)]
        else:
            foreign += [os.path.join(name, inner) for inner in _foreign_inside(full)]
    return foreign


def _unlisted(folder, listed):
    """What below `folder` (relative paths) is not among the `listed` files:
    links, and files and folders holding files that are not listed. Empty
    folders (a SavedModel's `assets/`) are nobody's loss; a kill's work in
    progress on a listed name (`.partial-NAME`, a worker's `.workertemp_N`)
    is the run's."""
    listed = set(listed)
    prefixes = {os.path.dirname(item) for item in listed}
    prefixes |= {os.path.join(*parts[:i]) for item in prefixes
                 for parts in [item.split(os.sep)] for i in range(1, len(parts))}

    def work_in_progress(relative):
        name = os.path.basename(relative)
        owner = os.path.join(os.path.dirname(relative), name[len(PARTIAL_PREFIX):])
        return (re.fullmatch(r"\.workertemp_\d+", name) is not None
                or name.startswith(PARTIAL_PREFIX) and (
                    os.path.normpath(owner) in listed or os.path.normpath(owner) in prefixes))

    unlisted = []
    for root, folders, files in os.walk(folder):
        relative = os.path.relpath(root, folder)
        kept = []
        for name in sorted(folders):
            inner = os.path.normpath(os.path.join(relative, name))
            if os.path.islink(os.path.join(root, name)):
                unlisted.append(inner)
            elif inner in prefixes:
                kept.append(name)
            elif work_in_progress(inner):
                continue
            elif any(files_below for _, _, files_below in os.walk(os.path.join(root, name))):
                unlisted.append(inner)
        folders[:] = kept
        unlisted += [os.path.normpath(os.path.join(relative, name)) for name in sorted(files)
                     if os.path.islink(os.path.join(root, name))
                     or (os.path.normpath(os.path.join(relative, name)) not in listed
                         and not work_in_progress(os.path.join(relative, name)))]
    return unlisted


def _foreign_inside(folder):
    foreign = []
    for root, folders, files in os.walk(folder):
        relative = os.path.relpath(root, folder)
        for name in sorted(folders):
            if os.path.islink(os.path.join(root, name)) or not _owned(name, RUN_SUBFOLDERS):
                foreign.append(os.path.normpath(os.path.join(relative, name)))
        # Descend only into the run's own folders, never into links or work
        # in progress (whatever a killed save left there is the run's).
        folders[:] = [name for name in folders if not os.path.islink(os.path.join(root, name))
                      and _owned(name, RUN_SUBFOLDERS) and not _owned(name, TEMPORARY)]
        foreign += [os.path.normpath(os.path.join(relative, name)) for name in sorted(files)
                    if os.path.islink(os.path.join(root, name))
                    or not _owned(name, RUN_SUBFOLDER_FILES + TEMPORARY)]
    return foreign


class RunDirectoryError(RuntimeError):
    """A run directory is locked, or holds a run with other settings."""


def _read_record(run_file):
    """`run.json` read and checked, or a one-line `RunDirectoryError`."""
    try:
        record = read_json(run_file)
    except (OSError, ValueError) as error:
        raise RunDirectoryError(f"{run_file} is unreadable ({error}); pass --overwrite to "
                                "start afresh.") from None
    shapes = {"settings": dict, "data": dict, "stages": dict, "files": dict, "entries": list}
    required = ("settings", "data", "stages")
    if not isinstance(record, dict):
        problems = ["the whole file"]
    else:
        problems = [key for key, kind in shapes.items()
                    if (key in required or key in record)
                    and not isinstance(record.get(key), kind)]
        if not problems and not all(isinstance(e, str) and _inside(e)
                                    for e in record.get("entries", [])):
            problems = ["entries"]
        if not problems and not all(_valid_stage_files(files)
                                    for files in record.get("files", {}).values()):
            problems = ["files"]
    if problems:
        raise RunDirectoryError(f"{run_file} is damaged ({', '.join(problems)} not as kerasbert "
                                "writes it); pass --overwrite to start afresh.")
    return record


def _inside(name):
    # A relative path that stays inside the run directory.
    return (isinstance(name, str) and name and not os.path.isabs(name)
            and os.path.normpath(name).split(os.sep)[0] not in (os.pardir, os.curdir))


def _valid_stage_files(files):
    """A stage's recorded files as `RunDirectory.finish` writes them: a list
    of names, or `{name: None or {file: size or [size, sha256]}}`, every
    name inside the run directory."""
    if isinstance(files, list):
        return all(_inside(name) for name in files)
    if not isinstance(files, dict):
        return False
    for name, manifest in files.items():
        if not _inside(name) or not (manifest is None or isinstance(manifest, dict)):
            return False
        for part, value in (manifest or {}).items():
            if not (part == "." or _inside(part)) or not (
                    isinstance(value, int) and not isinstance(value, bool)
                    or isinstance(value, list) and len(value) == 2
                    and isinstance(value[0], int) and isinstance(value[1], str)):
                return False
    return True


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


def _data_paths(data):
    """Every `"path"` a data identity names (see `fingerprint.path_identity`)."""
    if isinstance(data, dict):
        paths = [data["path"]] if isinstance(data.get("path"), str) else []
        return paths + [p for value in data.values() for p in _data_paths(value)]
    if isinstance(data, list):
        return [p for value in data for p in _data_paths(value)]
    return []


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
        self._lock_descriptor = None
        self._pending_clear = False
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
        # The lock is held on the directory itself, which a run cannot lose:
        # deleting `.lock` (it only tells who holds the lock) lets no second
        # run in.
        self._lock_descriptor = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._lock_descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_descriptor)
            self._lock_descriptor = None
            try:
                with open(os.path.join(self.path, LOCK_FILE), encoding="utf-8") as file:
                    holder = file.read().strip() or "another process"
            except OSError:
                holder = "another process"
            raise RunDirectoryError(
                f"output_dir {self.path} is in use by {holder}. Wait for that run to "
                "finish or stop it, or choose another --output_dir."
            ) from None
        started = datetime.datetime.now().isoformat(timespec="seconds")
        command = " ".join(sys.argv)[:300]
        with open(os.path.join(self.path, LOCK_FILE), "w", encoding="utf-8") as file:
            file.write(
                f"process {os.getpid()} on {socket.gethostname()} (since {started}: {command})")

    def _release(self, failed):
        if not self.chief:
            shutil.rmtree(self._scratch, ignore_errors=True)
            return
        if failed and self._new_run and not self._has_progress():
            # A run that failed before any progress leaves nothing behind.
            if self._created:
                shutil.rmtree(self.path, ignore_errors=True)
            else:
                remove_path(os.path.join(self.path, RUN_FILE))
        if self._lock_descriptor is not None:
            fcntl.flock(self._lock_descriptor, fcntl.LOCK_UN)
            os.close(self._lock_descriptor)
            self._lock_descriptor = None

    def _has_progress(self):
        if self.record and self.record.get("stages"):
            return True
        return any(
            name not in (LOCK_FILE, RUN_FILE) and not name.startswith(PARTIAL_PREFIX)
            for name in os.listdir(self.path)
        ) if os.path.isdir(self.path) else False

    def _new_record(self):
        return {"settings": self.settings, "data": self.data, "stages": {}, "entries": []}

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
            foreign = self._foreign_files()
            if foreign:
                raise RunDirectoryError(
                    f"output_dir {self.path} holds files that no kerasbert run writes "
                    f"({', '.join(foreign[:5])}{' …' if len(foreign) > 5 else ''}); "
                    "--overwrite clears only what a run's ledger names"
                    + ("" if _ledger(self.path) else
                       " (its run.json holds none: damaged, or of an earlier kerasbert)")
                    + ". Move them, or choose another --output_dir."
                )
            inside = [path for path in _data_paths(self.data)
                      if os.path.abspath(path).startswith(self.path + os.sep)]
            if inside:
                raise RunDirectoryError(
                    f"--overwrite would clear {self.path}, which holds this run's own input "
                    f"{inside[0]}; copy it elsewhere, or choose another --output_dir."
                )
            # Cleared only by `begin()`, once every check of the new run has
            # passed: a refused run leaves the old one as it was.
            self.record = self._new_record()
            self._pending_clear = True
            return
        elif os.path.exists(run_file):
            record = _read_record(run_file)
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
            self._check_stage_files()
            return
        elif not self.chief:
            return
        elif any(not n.startswith(PARTIAL_PREFIX) and n != LOCK_FILE
                 for n in os.listdir(self.path)):
            foreign = self._foreign_files()
            raise RunDirectoryError(
                f"output_dir {self.path} is not empty and holds no {RUN_FILE}: "
                + (f"it holds other files ({', '.join(foreign[:5])}"
                   f"{' …' if len(foreign) > 5 else ''}); choose another --output_dir."
                   if foreign else "it is not a kerasbert run of this version. Pass "
                   "--overwrite to clear it, or choose another --output_dir.")
            )
        self.record = self._new_record()
        write_json(run_file, self.record)
        self._new_run = True

    def _foreign_files(self):
        """Paths in the directory that no kerasbert run writes."""
        return foreign_files(self.path)

    def begin(self):
        """Clear the run that `overwrite` replaces (chief only), once the new
        run's checks have passed; a no-op otherwise. Call it before anything
        is written into the directory."""
        if not self._pending_clear:
            return
        self._pending_clear = False
        if not self.chief:
            return
        # run.json first: a kill during the clear leaves no ledger beside
        # half-removed outputs.
        remove_path(os.path.join(self.path, RUN_FILE))
        for name in os.listdir(self.path):
            if name != LOCK_FILE:
                remove_path(os.path.join(self.path, name))
        write_json(os.path.join(self.path, RUN_FILE), self.record)
        self._new_run = True

    def _check_stage_files(self):
        # The ledger is checked against the files: a stage whose outputs
        # were deleted, truncated or changed in any way (another size or
        # SHA-256 than the stage wrote) is redone, and so is every stage
        # after it.
        damaged = {stage: [name for name, recorded in _as_manifests(manifests).items()
                           if recorded is None and not os.path.exists(self.file(name))
                           or recorded is not None and not _unchanged(self.file(name), recorded)]
                   for stage, manifests in self.record.get("files", {}).items()
                   if stage in self.record["stages"]}
        damaged = {stage: names for stage, names in damaged.items() if names}
        if not damaged:
            return
        # Every stage after the first incomplete one is redone too: its
        # results came from the lost one.
        order = list(self.record["stages"])
        first = min(order.index(stage) for stage in damaged)
        for stage, names in sorted(damaged.items()):
            logging.warning("%s: %s of the finished stage %r is missing or changed; redoing it "
                            "and the stages after it.", self.path, ", ".join(names), stage)
            if self.chief:
                # Not read again: changed checkpoints would otherwise be
                # resumed from (training then starts afresh). Removed only
                # when they hold nothing but the stage's own files.
                manifests = _as_manifests(self.record["files"][stage])
                for name in names:
                    listed = manifests.get(name) or {}
                    foreign = (_unlisted(self.file(name), listed)
                               if os.path.isdir(self.file(name)) else [])
                    if foreign:
                        raise RunDirectoryError(
                            f"{self.file(name)} holds files that no kerasbert run writes "
                            f"({', '.join(foreign[:5])}), so the run cannot redo its stage "
                            f"{stage!r}; move them, or choose another --output_dir.")
                for name in names:
                    remove_path(self.file(name))
        for stage in order[first:]:
            del self.record["stages"][stage]

    def _holds_this_run(self, run_file):
        # `overwrite` clears only another run: the same settings resume.
        try:
            record = _read_record(run_file)
        except RunDirectoryError:
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

    def finish(self, stage, result=None, files=()):
        """Record `stage` as finished, with its figures and the files it
        wrote (relative paths; each one's files and sizes are recorded, and
        a rerun redoes the stage if one is missing or changed), atomically."""
        self.claim(*files)
        self.record["stages"][stage] = finite_json(result or {})
        if files:
            # Only the chief's files count (a worker writes to scratch).
            self.record.setdefault("files", {})[stage] = {
                name: _manifest(self.file(name)) if self.chief else None for name in files}
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

    def claim(self, *names):
        """Record the top-level `names` (relative paths; their first part
        counts) as the run's own in `run.json`'s `entries`, before they are
        written: `overwrite` removes what this ledger names and nothing
        else. `atomic`, `write_json` and `finish` claim what they write;
        writers that get a path from the run directory claim it first."""
        self.begin()
        entries = self.record.get("entries")
        if entries is None:  # a ledger from before entries: the layout's patterns rule
            return
        new = sorted({os.path.normpath(name).split(os.sep)[0] for name in names} - set(entries))
        if new:
            entries += new
            if self.chief:
                write_json(os.path.join(self.path, RUN_FILE), self.record)

    def atomic(self, *parts):
        """`atomic_path` for `parts` inside the run directory (on a non-chief
        worker: inside its scratch directory)."""
        self.claim(os.path.join(*parts))
        if not self.chief:
            return atomic_path(os.path.join(self._scratch, *parts))
        return atomic_path(self.file(*parts))

    def write_json(self, name, value):
        """Write `value` as `name` (chief only); return it as read back."""
        self.claim(name)
        if self.chief:
            write_json(self.file(name), value)
        return _canonical(value)
