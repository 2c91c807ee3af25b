"""Encode the real segments of a batch of segmented documents in one call."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kerasbert")
class SegmentEncoder(keras.layers.Layer):
    """Run an encoder over every real segment of `(batch, segments, length)` inputs.

    Flattens batch × segments, keeps only the real segments (those whose
    padding mask has a non-zero entry), encodes them in one call, and
    scatters the vectors back; absent segments get zeros. Compute and memory
    therefore scale with the number of real segments, not with batch ×
    largest segment count.

    Args:
        encoder: a Keras model from BERT inputs (`token_ids`, `segment_ids`,
            `padding_mask`, each `(n, length)`) to vectors `(n, hidden)`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: dict of int tensors of shape `(batch, segments, length)`.
        training: bool. Passed to the encoder.

    Returns:
        A tuple `(vectors, segment_mask)`: `(batch, segments, hidden)` and an
        int32 `(batch, segments)` mask of real segments.
    """

    def __init__(self, encoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder

    def call(self, inputs, training=None):
        shape = tf.shape(inputs["token_ids"])
        batch_size, num_segments = shape[0], shape[1]
        flat = {name: tf.reshape(value, [-1, shape[2]]) for name, value in inputs.items()}
        real = tf.reduce_any(tf.not_equal(flat["padding_mask"], 0), axis=-1)
        real_index = tf.where(real)
        vectors = self.encoder(
            {name: tf.gather_nd(value, real_index) for name, value in flat.items()},
            training=training,
        )
        hidden = tf.shape(vectors)[-1]
        output_shape = tf.cast(tf.stack([batch_size * num_segments, hidden]), tf.int64)
        vectors = tf.scatter_nd(real_index, vectors, output_shape)
        vectors = tf.reshape(vectors, [batch_size, num_segments, hidden])
        segment_mask = tf.reshape(tf.cast(real, "int32"), [batch_size, num_segments])
        return vectors, segment_mask

    def compute_output_spec(self, inputs, training=None):
        token_ids = inputs["token_ids"]
        hidden = self.encoder.output.shape[-1]
        batch, segments = token_ids.shape[0], token_ids.shape[1]
        return (
            keras.KerasTensor((batch, segments, hidden), dtype=self.encoder.output.dtype),
            keras.KerasTensor((batch, segments), dtype="int32"),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"encoder": keras.layers.serialize(self.encoder)})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["encoder"], dict):
            config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)
