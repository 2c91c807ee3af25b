"""Checks of run arguments, made before anything is built.

Each raises a one-line `ValueError` that names the argument (spelled as the
recipes' flag) and the value received.
"""

import math
import numbers
import os


def positive_int(name, value, allow_none=False):
    """`value` if it is an int ≥ 1 (or None with `allow_none`)."""
    if value is None and allow_none:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {value!r}")
    return int(value)


def non_negative_int(name, value):
    """`value` if it is an int ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"`{name}` must be an integer ≥ 0. Received: {value!r}")
    return int(value)


def positive_number(name, value):
    """`value` if it is a finite number > 0 (a learning rate)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"`{name}` must be a finite number > 0. Received: {value!r}")
    return float(value)


def in_range(name, value, low, high, *, low_open=False, high_open=False):
    """`value` if it is a finite number in the interval from `low` to `high`."""
    ok = (
        not isinstance(value, bool) and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and (value < high if high_open else value <= high)
    )
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"`{name}` must be in {interval}. Received: {value!r}")
    return float(value)


def one_of(name, value, choices):
    """`value` if it is one of `choices`."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}. Received: {value!r}")
    return value


def sequence_length_fits(sequence_length, backbone):
    """Raise unless `sequence_length` fits the backbone's position table."""
    limit = getattr(backbone, "max_sequence_length", None)
    if limit is not None and sequence_length > limit:
        raise ValueError(
            f"`sequence_length` {sequence_length} exceeds the backbone's position table of "
            f"{limit} positions; pass a sequence_length of at most {limit}."
        )


def physical_memory_bytes():
    """This machine's memory in bytes, or None where the system won't say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def training_batch_fits(batch_size, sequence_length, backbone, sequences_per_example=1,
                        strategy=None, memory_bytes=None):
    """Raise unless a training batch could fit in this machine's memory.

    The estimate is a lower bound on the activations a training step keeps
    for its backward pass in host memory: per layer and word piece, about
    ten hidden-sized vectors (attention inputs and output, two LayerNorms,
    the feed-forward's inner layer) in the backbone's compute dtype, for
    this host's share of the global batch; attention scores are left out
    (fused kernels need not keep them). Only a batch beyond the machine's
    RAM is refused, before anything is built, instead of an abort inside
    TensorFlow's allocator; with a GPU or TPU, whose memory TensorFlow
    reports only once it runs, nothing is checked.

    Args:
        batch_size: int. Examples per step (the global batch).
        sequence_length: int. Word pieces per sequence.
        backbone: the encoder (its `hidden_dim`, `num_layers`, `dtype_policy`).
        sequences_per_example: int. Sequences an example becomes (segments).
        strategy: `tf.distribute.Strategy` or None. Its workers split the
            batch (each host holds its replicas' share).
        memory_bytes: int or None. The memory to compare with; None: RAM.

    Example:
    ```python
    import kerasbert
    from kerasbert.utils import arguments
    backbone, _ = kerasbert.load_backbone("tiny")
    arguments.training_batch_fits(24, 512, backbone)  # fits: no error
    ```
    """
    import tensorflow as tf

    if memory_bytes is None:
        if tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"):
            return
        memory_bytes = physical_memory_bytes()
    hidden = getattr(backbone, "hidden_dim", None)
    layers = getattr(backbone, "num_layers", None)
    if not (memory_bytes and hidden and layers):
        return
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        local = len(strategy.extended.worker_devices)
        batch_size = math.ceil(batch_size * local / strategy.num_replicas_in_sync)
    policy = getattr(backbone, "dtype_policy", None)
    compute_bytes = 2 if "16" in str(getattr(policy, "compute_dtype", "float32")) else 4
    tokens = batch_size * sequences_per_example * sequence_length
    needed = compute_bytes * tokens * 10 * hidden * layers
    if needed > memory_bytes:
        raise ValueError(
            f"`batch_size` {batch_size} at sequence_length {sequence_length} needs at least "
            f"{needed / 2**30:,.0f} GiB of activations to train (a lower bound; this machine "
            f"has {memory_bytes / 2**30:,.0f} GiB); pass a smaller batch_size."
        )


def several_classes(data):
    """Raise unless the training examples hold at least two classes."""
    present = sorted({int(label) for label in data.labels})
    if len(present) < 2:
        only = data.label_names[present[0]] if present else None
        raise ValueError(
            f"The training data {data.source} holds a single class ({only!r}); a "
            "classifier needs at least two."
        )
