import json
import socket

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


@pytest.mark.parametrize("value, message", [
    (None, "needs the environment variable TF_CONFIG"),
    ("{not json", r"^TF_CONFIG is not valid JSON \(Expecting"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}',
     r'^TF_CONFIG must hold "cluster"'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 2}}',
     r'^TF_CONFIG must hold "task".*naming one of the cluster.s tasks \(worker\)'),
    ('{"cluster": {"worker": ["no-port"]}, "task": {"type": "worker", "index": 0}}',
     r'^TF_CONFIG must hold "cluster"'),
    ('{"cluster": {"worker": ["localhost:70000"]}, "task": {"type": "worker", "index": 0}}',
     r'^TF_CONFIG must hold "cluster".*each port in 0–65535'),
])
def test_a_bad_tf_config_is_one_line_naming_it(monkeypatch, value, message):
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ValueError, match=message) as error:
        distribute.make_strategy("multi_worker")
    assert "\n" not in str(error.value)


def test_a_port_in_use_is_named_before_tensorflow_tries_it(monkeypatch):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setenv("TF_CONFIG", json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{port}", "127.0.0.1:1"]},
            "task": {"type": "worker", "index": 0}}))
        with pytest.raises(ValueError, match=rf"address 127.0.0.1:{port}, but port {port} is "
                                             "already in use"):
            distribute.make_strategy("multi_worker")


def test_a_lost_peer_is_one_line_naming_it(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
        "task": {"type": "worker", "index": 0}}))
    # What TensorFlow 2.21 raised on the survivor when its peer was killed.
    message = ("Graph execution error: Detected at node CollectiveReduceV2 … Collective ops is "
               "aborted by: Error reported from /job:worker/task:0: The following tasks are "
               "unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe "
               "tasks have crashed.")
    line = distribute._lost_worker_message(message)
    assert line.startswith("worker 1 (10.0.0.2:2222) stopped answering")
    assert "same command to resume" in line and "\n" not in line
