"""The identity of a run's inputs, for `run.json`'s fingerprint.

In-memory examples are identified by a hash of their content (so a subset,
a carved split or an edited file all count as other data); files read as a
stream (pre-training corpora) and backbone directories by path, size and
modification time, which costs nothing on a large corpus.
"""

import hashlib
import os

import numpy as np
import tensorflow as tf

from kerasbert.data.datasets import TFDS_PREFIX


def labeled_texts_identity(data):
    """`{"examples", "sha256"}` of a `LabeledTexts`, or None: its content,
    wherever it was read from (a moved file is the same data)."""
    if data is None:
        return None
    digest = hashlib.sha256()
    digest.update(repr(list(data.label_names)).encode("utf-8"))
    for text, label in zip(data.texts, data.labels):
        digest.update(text.encode("utf-8"))
        digest.update(b"\0%d\0" % int(label))
    return {"examples": len(data), "sha256": digest.hexdigest()}


def path_identity(path):
    """Path, size and modification time of a file, or of every file below a
    directory; a name that is not a path (a preset name, `tfds:NAME`) is
    identified by itself."""
    if not isinstance(path, str) or path.startswith(TFDS_PREFIX) or not os.path.exists(path):
        return {"name": str(path)}
    path = os.path.abspath(path)
    if os.path.isfile(path):
        stat = os.stat(path)
        return {"path": path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    files = {}
    for root, _, names in os.walk(path):
        for name in sorted(names):
            stat = os.stat(os.path.join(root, name))
            files[os.path.relpath(os.path.join(root, name), path)] = [
                stat.st_size, stat.st_mtime_ns
            ]
    return {"path": path, "files": files}


def strategy_name(strategy):
    """A `tf.distribute.Strategy` as the recipes' name and its replica count,
    e.g. `"multi_worker x2"`; `"default"` for one device."""
    # Outside every scope `get_strategy()` is the default (one-device) strategy.
    if strategy is None or (not tf.distribute.has_strategy()
                            and strategy is tf.distribute.get_strategy()):
        return "default"
    names = ((tf.distribute.MultiWorkerMirroredStrategy, "multi_worker"),
             (tf.distribute.MirroredStrategy, "mirrored"), (tf.distribute.TPUStrategy, "tpu"))
    name = next((n for kind, n in names if isinstance(strategy, kind)), type(strategy).__name__)
    return f"{name} x{strategy.num_replicas_in_sync}"


def array_identity(arrays):
    """A sha256 of a list of arrays (e.g. initial head weights), or None."""
    if arrays is None:
        return None
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
