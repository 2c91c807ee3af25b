import pytest

from kerasbert.training import distribute


def test_default_strategy_and_chief():
    strategy = distribute.make_strategy("default")
    assert strategy.num_replicas_in_sync == 1
    assert distribute.is_chief(strategy)


def test_unknown_strategy_is_named():
    with pytest.raises(ValueError, match="strategy"):
        distribute.make_strategy("horovod")


def test_the_chief_is_the_chief_task_else_worker_zero():
    workers = {"worker": ["a:1", "b:1"]}
    with_chief = {"chief": ["c:1"], **workers}
    assert distribute.is_chief_task(workers, "worker", 0)
    assert not distribute.is_chief_task(workers, "worker", 1)
    assert distribute.is_chief_task(with_chief, "chief", 0)
    assert not distribute.is_chief_task(with_chief, "worker", 0)
    assert distribute.is_chief_task({}, None, None)
