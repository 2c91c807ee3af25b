"""The recipes' mixed-precision settings: which policies, and loss scaling."""

import keras

# The compute policies a recipe may train under; None is float32.
PRECISIONS = (None, "mixed_bfloat16", "mixed_float16")


def check_precision(mixed_precision):
    """Raise a `ValueError` unless `mixed_precision` is one of `PRECISIONS`."""
    if mixed_precision not in PRECISIONS:
        raise ValueError(
            f"`mixed_precision` must be one of {PRECISIONS}. Received: {mixed_precision!r}"
        )


def with_loss_scaling(optimizer, mixed_precision):
    """`optimizer` in a dynamic `LossScaleOptimizer` under `"mixed_float16"`.

    Keras wraps automatically only when the global policy is float16; the
    recipes set the policy on the backbone instead, so they wrap here.
    bfloat16 has float32's range and needs no loss scaling.
    """
    if mixed_precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
