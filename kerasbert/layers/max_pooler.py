"""Masked maximum over a sequence axis."""

import keras
from keras import ops

from kerasbert.layers.sequence_pooler import SequencePooler


@keras.saving.register_keras_serializable(package="kerasbert")
class MaxPooler(SequencePooler):
    """Take the element-wise maximum over the real (unmasked) steps.

    Args:
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float tensor of shape `(batch, steps, hidden)`.
        mask: tensor of shape `(batch, steps)`, non-zero for real steps.
            `None` treats every step as real.

    Returns:
        A tensor of shape `(batch, hidden)`. A row without real steps gives
        zeros.

    Examples:
    ```python
    import numpy as np
    x = np.array([[[1.0, 5.0], [3.0, 4.0], [9.0, 9.0]]])
    kerasbert.layers.MaxPooler()(x, mask=np.array([[1, 1, 0]]))  # [[3., 5.]]
    ```
    """

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.max(inputs, axis=1)
        real = ops.expand_dims(ops.not_equal(mask, 0), -1)
        lowest = ops.full_like(inputs, -65504.0)  # finite in float16 too
        pooled = ops.max(ops.where(real, inputs, lowest), axis=1)
        any_real = ops.any(real, axis=1)
        return ops.where(any_real, pooled, ops.zeros_like(pooled))
