"""Masked mean over a sequence axis."""

import keras
from keras import ops

from kerasbert.layers.sequence_pooler import SequencePooler


@keras.saving.register_keras_serializable(package="kerasbert")
class MeanPooler(SequencePooler):
    """Average the vectors of the real (unmasked) steps.

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
    x = np.array([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])
    kerasbert.layers.MeanPooler()(x, mask=np.array([[1, 1, 0]]))  # [[2., 3.]]
    ```
    """

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.mean(inputs, axis=1)
        weights = ops.expand_dims(ops.cast(ops.not_equal(mask, 0), inputs.dtype), -1)
        total = ops.sum(inputs * weights, axis=1)
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)
        return total / count
