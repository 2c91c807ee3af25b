"""Files written whole or not at all: atomic paths and JSON.

Every file and directory is written under a temporary `.partial-NAME`
beside its final name and renamed into place, so a kill leaves either the
old or the new version, never half of one.
"""

import contextlib
import hashlib
import json
import math
import os
import shutil

PARTIAL_PREFIX = ".partial-"


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
    remove_path(partial)
    try:
        yield partial
    except BaseException:
        remove_path(partial)
        raise
    if os.path.isfile(partial):
        descriptor = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(descriptor)  # on disk before the name points at it
        finally:
            os.close(descriptor)
    if os.path.isdir(partial) and os.path.exists(path):
        remove_path(path)  # a directory cannot be renamed over a non-empty one
    os.replace(partial, path)


def write_json(path, value):
    """Write `value` as JSON to `path` atomically; non-finite floats become null."""
    with atomic_path(path) as partial:
        with open(partial, "w", encoding="utf-8") as file:
            json.dump(finite_json(value), file, indent=2, allow_nan=False, default=str)
            file.flush()
            os.fsync(file.fileno())


def read_json(path):
    """The JSON value stored in `path`."""
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def read_json_object(path, advice):
    """The JSON object stored in `path`, or a one-line `ValueError` naming
    the file, what is wrong and `advice` (what to do about it)."""
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is unreadable ({str(error).splitlines()[0]}); {advice}.") \
            from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object; {advice}.")
    return value


def remove_path(path):
    """Remove the file, link or directory tree at `path`, if there is one."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def file_digest(path):
    """The SHA-256 of the file at `path`, as hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
