import keras
import numpy as np
import pytest
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


def test_composes_with_layerwise_decay_in_either_order_and_serializes():
    lazy_outside = kerasbert.optimizers.lazy_updates(
        kerasbert.layerwise_decay(keras.optimizers.Adam(1e-3), decay=0.9), [r"_logits/"]
    )
    layerwise_outside = kerasbert.layerwise_decay(
        kerasbert.optimizers.lazy_updates(keras.optimizers.Adam(1e-3), [r"_logits/"]), decay=0.9
    )
    for optimizer, chain in (
        (lazy_outside, [kerasbert.optimizers.LazyUpdates, kerasbert.LayerwiseDecay]),
        (layerwise_outside, [kerasbert.LayerwiseDecay, kerasbert.optimizers.LazyUpdates]),
    ):
        revived = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
        assert revived.get_config() == optimizer.get_config()
        assert [type(revived), type(revived.inner_optimizer)] == chain
        assert type(revived.inner_optimizer.inner_optimizer) is keras.optimizers.Adam
    config = lazy_outside.get_config()
    assert config["lazy_variables"] == [r"_logits/"]
    assert config["inner_optimizer"]["config"]["decay"] == 0.9


def test_either_order_gives_the_same_steps_without_weight_decay():
    def run(optimizer):
        a = keras.Variable(np.ones(3, "float32"), name="a")
        b = keras.Variable(np.ones(3, "float32"), name="b")
        g = tf.constant([1.0, -2.0, 3.0])
        for gradients in ([g, g], [g, tf.zeros(3)], [g, g]):
            optimizer.apply(gradients, [a, b])
        return a.numpy(), b.numpy()

    lazy, layerwise = kerasbert.optimizers.lazy_updates, kerasbert.layerwise_decay
    outside = run(lazy(layerwise(keras.optimizers.Adam(0.1), multipliers={"a": 0.5}), ["^b$"]))
    inside = run(layerwise(lazy(keras.optimizers.Adam(0.1), ["^b$"]), multipliers={"a": 0.5}))
    np.testing.assert_array_equal(outside[0], inside[0])
    np.testing.assert_array_equal(outside[1], inside[1])


def test_invalid_lazy_variables():
    with pytest.raises(ValueError, match="list of regexes"):
        kerasbert.optimizers.lazy_updates(keras.optimizers.Adam(), "_logits/")
    with pytest.raises(ValueError, match="invalid regex"):
        kerasbert.optimizers.lazy_updates(keras.optimizers.Adam(), ["("])
