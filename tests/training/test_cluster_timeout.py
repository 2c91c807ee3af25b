"""A multi-worker job whose other worker never starts fails in bounded time."""

import json
import os
import subprocess
import sys
import time

import pytest

from tests.helpers import free_ports

ALONE = """
import sys
from kerasbert.training.distribute import make_strategy
make_strategy("multi_worker", cluster_timeout=float(sys.argv[1]))
print("joined")
"""


@pytest.mark.slow
def test_a_worker_that_never_joins_fails_the_others_naming_it():
    ports = free_ports(2)
    config = {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
              "task": {"type": "worker", "index": 0}}
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-c", ALONE, "10"], capture_output=True, text=True, timeout=240,
        env=dict(os.environ, TF_CONFIG=json.dumps(config), TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode != 0 and "joined" not in result.stdout
    assert time.time() - started < 120
    message = [line for line in result.stderr.splitlines() if line.startswith("-c: error:")]
    assert message == [
        f"-c: error: the multi-worker cluster did not form within 10 s (--cluster_timeout); "
        f"no answer from worker 1 (127.0.0.1:{ports[1]})."], result.stderr[-2000:]
