import numpy as np
import pytest

import kerasbert
from tests.helpers import assert_config_round_trip

X = np.array(
    [[[1.0, 5.0], [3.0, -4.0], [100.0, 100.0]], [[2.0, 2.0], [-7.0, 7.0], [0.5, 0.5]]],
    dtype="float32",
)
MASK = np.array([[1, 1, 0], [1, 1, 1]])


def test_mean_and_max_over_real_steps_only():
    np.testing.assert_allclose(
        kerasbert.layers.MeanPooler()(X, mask=MASK), [[2.0, 0.5], [-1.5, 9.5 / 3]], rtol=1e-6
    )
    np.testing.assert_allclose(
        kerasbert.layers.MaxPooler()(X, mask=MASK), [[3.0, 5.0], [2.0, 7.0]]
    )


@pytest.mark.parametrize("pooler_class", ["MeanPooler", "MaxPooler", "AttentionPooler"])
def test_padded_steps_do_not_change_output(pooler_class):
    pooler = getattr(kerasbert.layers, pooler_class)()
    changed = X.copy()
    changed[0, 2] = -55.0  # a padded step of the first row
    np.testing.assert_allclose(pooler(X, mask=MASK), pooler(changed, mask=MASK), rtol=1e-6)
    assert_config_round_trip(pooler)


def test_attention_weights_are_a_softmax_over_real_steps():
    pooler = kerasbert.layers.AttentionPooler(hidden_dim=4)
    pooler(X, mask=MASK)
    pooler.score.kernel.assign(np.array([[1.0], [-2.0], [0.5], [3.0]]))
    weights = np.asarray(pooler.attention_weights(X, mask=MASK))
    assert weights[0, 2] == 0.0
    np.testing.assert_allclose(weights.sum(axis=1), [1.0, 1.0], rtol=1e-6)
    projected = np.tanh(X @ pooler.projection.kernel.numpy() + pooler.projection.bias.numpy())
    scores = projected @ pooler.score.kernel.numpy()[:, 0]
    expected = np.exp(scores[0, :2]) / np.exp(scores[0, :2]).sum()
    np.testing.assert_allclose(weights[0, :2], expected, rtol=1e-5)
    np.testing.assert_allclose(
        pooler(X, mask=MASK)[0], (weights[0, :, None] * X[0]).sum(axis=0), rtol=1e-5
    )


def test_untrained_attention_is_the_mean():
    np.testing.assert_allclose(
        kerasbert.layers.AttentionPooler()(X, mask=MASK),
        kerasbert.layers.MeanPooler()(X, mask=MASK), rtol=1e-6,
    )
