import pytest

from kerasbert.training import distribute


def test_default_strategy_and_chief():
    strategy = distribute.make_strategy("default")
    assert strategy.num_replicas_in_sync == 1
    assert distribute.is_chief(strategy)


def test_unknown_strategy_is_named():
    with pytest.raises(ValueError, match="strategy"):
        distribute.make_strategy("horovod")
