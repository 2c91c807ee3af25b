import keras
import numpy as np
import tensorflow as tf

import kerasbert


def test_lazy_variable_stays_put_on_zero_gradient_steps():
    a = keras.Variable(np.ones(3, "float32"), name="a")
    b = keras.Variable(np.ones(3, "float32"), name="b")
    optimizer = kerasbert.optimizers.lazy_updates(keras.optimizers.Adam(0.1), [r"^b$"])
    optimizer.build([a, b])
    g = tf.constant([1.0, -2.0, 3.0])
    optimizer.apply([g, g], [a, b])  # both move; Adam now has momentum
    b_after_first = b.numpy().copy()
    zero = tf.zeros(3)
    optimizer.apply([g, zero], [a, b])
    np.testing.assert_array_equal(b.numpy(), b_after_first)  # lazy: no momentum step
    eager = kerasbert.optimizers.lazy_updates(keras.optimizers.Adam(0.1), [])
    c = keras.Variable(np.ones(3, "float32"), name="c")
    eager.build([c])
    eager.apply([g], [c])
    eager.apply([zero], [c])
    assert not np.allclose(c.numpy(), b_after_first)  # plain Adam moves on momentum


def test_composes_with_layerwise_decay_and_serializes():
    optimizer = kerasbert.layerwise_decay(
        kerasbert.optimizers.lazy_updates(keras.optimizers.Adam(1e-3), [r"_logits/"]), decay=0.9
    )
    assert type(optimizer).__name__ == "LayerwiseLazyAdam"
    config = keras.optimizers.serialize(optimizer)
    revived = keras.optimizers.deserialize(config)
    assert revived.get_config()["lazy_variables"] == [r"_logits/"]
    assert revived.get_config()["decay"] == 0.9
