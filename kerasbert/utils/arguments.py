"""Checks of run arguments, made before anything is built.

Each raises a one-line `ValueError` that names the argument (spelled as the
recipes' flag) and the value received.
"""

import math
import numbers


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


def several_classes(data):
    """Raise unless the training examples hold at least two classes."""
    present = sorted({int(label) for label in data.labels})
    if len(present) < 2:
        only = data.label_names[present[0]] if present else None
        raise ValueError(
            f"The training data {data.source} holds a single class ({only!r}); a "
            "classifier needs at least two."
        )
