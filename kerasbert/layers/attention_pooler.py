"""Learned self-attention pooling over a sequence axis."""

import keras
from keras import ops

from kerasbert.layers.sequence_pooler import SequencePooler


@keras.saving.register_keras_serializable(package="kerasbert")
class AttentionPooler(SequencePooler):
    """Pool vectors by a learned softmax attention over the real steps.

    Scores every step with a one-layer MLP, `s_j = vᵀ tanh(W h_j + b)`
    (the self-attention of Lin et al. 2017 / Yang et al. 2016 with one
    head), takes a softmax over the real steps only, and returns
    `Σ_j softmax(s)_j h_j`. `v` starts at zero, so an untrained pooler is
    the mean over real steps.

    Args:
        hidden_dim: int or None. The width of `W`; `None` uses the input
            width. Defaults to `None`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float tensor of shape `(batch, steps, hidden)`.
        mask: tensor of shape `(batch, steps)`, non-zero for real steps.
            `None` treats every step as real.

    Returns:
        A tensor of shape `(batch, hidden)`.

    Examples:
    ```python
    import numpy as np
    x = np.array([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])
    kerasbert.layers.AttentionPooler()(x, mask=np.array([[1, 1, 0]]))  # [[2., 3.]]
    ```

    References:
    - [Sun et al., 2019](https://arxiv.org/abs/1905.05583), §4.1, hierarchical methods.
    """

    def __init__(self, hidden_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim

    def build(self, input_shape):
        width = self.hidden_dim or input_shape[-1]
        self.projection = keras.layers.Dense(
            width, activation="tanh", dtype=self.dtype_policy, name="projection"
        )
        self.projection.build(input_shape)
        self.score = keras.layers.Dense(
            1, use_bias=False, kernel_initializer="zeros", dtype=self.dtype_policy,
            name="score",
        )
        self.score.build((*input_shape[:-1], width))
        self.built = True

    def attention_weights(self, inputs, mask=None):
        """The softmax weights over steps, shape `(batch, steps)`."""
        scores = ops.squeeze(self.score(self.projection(inputs)), axis=-1)
        scores = ops.cast(scores, "float32")
        if inputs.shape[1] == 1:
            return ops.ones_like(scores)  # one step: softmax is 1 (Keras warns)
        if mask is not None:
            scores = ops.where(ops.not_equal(mask, 0), scores, -1e9)
        return ops.softmax(scores, axis=-1)

    def call(self, inputs, mask=None):
        weights = ops.cast(self.attention_weights(inputs, mask), inputs.dtype)
        return ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim})
        return config
