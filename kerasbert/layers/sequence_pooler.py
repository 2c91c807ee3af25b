"""The base of the layers that pool a masked sequence into one vector."""

import keras


class SequencePooler(keras.layers.Layer):
    """Pools `(batch, steps, width)` to `(batch, width)` over the real steps.

    Subclasses implement `call(inputs, mask=None)`; `mask` is `(batch,
    steps)`, nonzero at real steps. The steps axis is pooled away, and the
    mask with it. Like Keras' global pooling layers, which share a base.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        # Explicit, so that a `DTypePolicy` passed as `dtype` serializes.
        return super().get_config()
