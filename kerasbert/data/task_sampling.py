"""Mixing homogeneous per-task batches for multi-task training."""

import numpy as np
import tensorflow as tf

SAMPLING = ("proportional", "uniform", "temperature")


def task_weights(sizes, sampling="proportional", alpha=0.5):
    """Sampling probabilities of the tasks.

    Args:
        sizes: dict. Task → number of training examples.
        sampling: str. `"proportional"` to size (the paper's default),
            `"uniform"`, or `"temperature"`: proportional to size^alpha.
        alpha: float. The exponent of `"temperature"` (1 = proportional,
            0 = uniform).

    Returns:
        A dict task → probability.
    """
    if sampling not in SAMPLING:
        raise ValueError(f"`sampling` must be one of {SAMPLING}. Received: {sampling!r}")
    exponent = {"proportional": 1.0, "uniform": 0.0, "temperature": alpha}[sampling]
    raw = {task: float(size) ** exponent for task, size in sizes.items()}
    total = sum(raw.values())
    return {task: value / total for task, value in raw.items()}


def _with_task_keys(batches, task, tasks):
    """(features, labels) → (features, {t: labels or 0}, {t: 1 or 0})."""

    def expand(features, labels):
        zeros = tf.zeros_like(labels)
        y = {t: labels if t == task else zeros for t in tasks}
        ones = tf.ones_like(labels, tf.float32)
        sample_weight = {t: ones if t == task else 0.0 * ones for t in tasks}
        return features, y, sample_weight

    return batches.map(expand)


def mix_task_batches(task_batches, weights, seed=0):
    """An endless stream of homogeneous batches, task drawn by `weights`.

    Args:
        task_batches: dict. Task → `tf.data.Dataset` of `(features, labels)`
            batches (e.g. from `kerasbert.make_batches`), repeated forever.
        weights: dict. Task → probability (see `task_weights`).
        seed: int. Makes the task sequence reproducible.

    Returns:
        A `tf.data.Dataset` of `(features, y, sample_weight)` where `y` and
        `sample_weight` are dicts over all tasks; only the batch's task has
        non-zero weights.
    """
    tasks = list(task_batches)
    streams = [_with_task_keys(task_batches[t].repeat(), t, tasks) for t in tasks]
    return tf.data.Dataset.sample_from_datasets(
        streams, weights=[weights[t] for t in tasks], seed=seed
    )


def concatenate_task_batches(task_batches, all_tasks=None):
    """All batches of every task once, in task order (for evaluation).

    `all_tasks` lists every task of the model (defaults to those in
    `task_batches`): tasks without batches here still get (zero-weight)
    label entries, so that labels match the model's outputs.
    """
    tasks = list(all_tasks or task_batches)
    datasets = [_with_task_keys(task_batches[t], t, tasks) for t in task_batches]
    combined = datasets[0]
    for dataset in datasets[1:]:
        combined = combined.concatenate(dataset)
    return combined


def sampled_task_frequencies(weights, draws, seed=0):
    """Frequencies of each task over `draws` draws with `mix_task_batches`' sampler."""
    tasks = list(weights)
    stream = tf.data.Dataset.sample_from_datasets(
        [tf.data.Dataset.from_tensors(i).repeat() for i in range(len(tasks))],
        weights=[weights[t] for t in tasks], seed=seed,
    )
    counts = np.bincount(np.fromiter(stream.take(draws).as_numpy_iterator(), int), minlength=len(tasks))
    return {t: counts[i] / draws for i, t in enumerate(tasks)}
