"""Callbacks of a resumable fine-tuning run that keeps its best model."""

import csv
import os
import shutil

import keras

HISTORY_FILE = "history.csv"
BACKUP_DIR = "backup"
BEST_WEIGHTS_FILE = os.path.join("checkpoints", "best.weights.h5")


def read_epoch_history(output_dir):
    """Per-epoch logs of a run, one dict per epoch, across restarts.

    A run killed between writing an epoch's row and backing it up repeats
    that epoch when resumed; the later row wins.
    """
    path = os.path.join(output_dir, HISTORY_FILE)
    if not os.path.exists(path):
        return []
    by_epoch = {}
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            epoch = int(row.pop("epoch"))
            # CSVLogger writes "NA" for metrics an epoch did not produce.
            values = {k: float(v) for k, v in row.items() if v not in ("", "NA")}
            by_epoch[epoch] = {"epoch": epoch + 1, **values}
    return [by_epoch[e] for e in sorted(by_epoch)]


def fine_tuning_callbacks(output_dir, monitor=None):
    """Logging, kill-and-resume, and best-on-validation checkpointing.

    - `keras.callbacks.BackupAndRestore` in `output_dir/backup`: a killed run
      started again with the same `output_dir` resumes at its last finished
      epoch (weights, optimizer state and step count restored).
    - `keras.callbacks.CSVLogger` appending to `output_dir/history.csv`, so
      the per-epoch record survives restarts (see `read_epoch_history`).
    - `keras.callbacks.ModelCheckpoint` of the best weights by `monitor`
      (maximised) in `output_dir/checkpoints/best.weights.h5`; on resume it
      only overwrites them with a better epoch than any logged before.
    - `keras.callbacks.TensorBoard` logs in `output_dir/logs`.

    Args:
        output_dir: str. The run's directory.
        monitor: str or None. A logged metric to maximise, e.g.
            `"val_accuracy"`; `None` keeps no best checkpoint.

    Returns:
        A list of Keras callbacks.
    """
    os.makedirs(output_dir, exist_ok=True)
    backup_dir = os.path.join(output_dir, BACKUP_DIR)
    history_path = os.path.join(output_dir, HISTORY_FILE)
    if not os.path.exists(backup_dir):
        # A fresh start: the records of an earlier, finished run are stale.
        for stale in (history_path, os.path.join(output_dir, BEST_WEIGHTS_FILE)):
            if os.path.exists(stale):
                os.remove(stale)
        shutil.rmtree(os.path.join(output_dir, "logs"), ignore_errors=True)
    callbacks = [
        keras.callbacks.CSVLogger(history_path, append=True),
        keras.callbacks.BackupAndRestore(backup_dir),
        keras.callbacks.TensorBoard(os.path.join(output_dir, "logs")),
    ]
    if monitor:
        best_so_far = max(
            (epoch[monitor] for epoch in read_epoch_history(output_dir) if monitor in epoch),
            default=None,
        )
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                os.path.join(output_dir, BEST_WEIGHTS_FILE),
                monitor=monitor,
                mode="max",
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=best_so_far,
            )
        )
    return callbacks
