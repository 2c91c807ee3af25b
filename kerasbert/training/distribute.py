"""tf.distribute strategies from a name, as recipes' `--strategy` flag."""

import contextlib
import errno
import json
import os
import re
import socket
import subprocess
import sys

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
# Seconds a multi-worker job waits for every worker to join before it fails.
DEFAULT_CLUSTER_TIMEOUT = 600


class ClusterTimeout:
    """Ends this process with a one-line error unless `disarm()` is called
    within `seconds`: TensorFlow itself may wait a long time for a missing
    worker, inside C++ calls that hold Python's lock, so the watch is a
    small child process. The message names the workers whose address
    accepts no connection (those that never started)."""

    def __init__(self, seconds, tasks):
        self.seconds = seconds
        self._watch = subprocess.Popen(
            [sys.executable, "-S", "-c", _WATCH, str(os.getpid()), str(seconds),
             os.path.basename(sys.argv[0]) or "kerasbert", json.dumps(tasks)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def disarm(self):
        self._watch.kill()
        self._watch.wait()


# The watch: after the timeout, name the silent workers and end the parent.
_WATCH = """
import json, os, signal, socket, sys, time
parent, seconds, program, tasks = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
time.sleep(seconds)
if os.getppid() != parent:
    sys.exit(0)  # the process we watch is gone
def answers(address):
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return True
    except (OSError, ValueError):
        return False
missing = [f"{job} {index} ({address})" for job, index, address in tasks if not answers(address)]
print(f"{program}: error: the multi-worker cluster did not form within {seconds:g} s "
      "(--cluster_timeout); " + (f"no answer from {', '.join(missing)}." if missing else
      "every worker answers, but not all joined."), file=sys.stderr, flush=True)
# SIGTERM ends a process blocked in a collective (no Python runs there to
# handle it) with 143, "Terminated", not read as an out-of-memory kill; a
# process that survives it is killed.
os.kill(parent, signal.SIGTERM)
for _ in range(100):
    time.sleep(0.1)
    if os.getppid() != parent:
        sys.exit(0)
os.kill(parent, signal.SIGKILL)
"""


def cluster_config():
    """`TF_CONFIG` read and checked: `{"cluster": {job: ["host:port", …]},
    "task": {"type": job, "index": i}}`, or a one-line `ValueError` that
    names `TF_CONFIG` and what is wrong with it."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ValueError("--strategy=multi_worker needs the environment variable TF_CONFIG "
                         "(the cluster's addresses and this worker's task); it is not set.")
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {text[:80]!r}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster or not all(
            isinstance(addresses, list) and addresses
            and all(isinstance(a, str) and re.fullmatch(r".+:\d{1,5}", a)
                    and int(a.rpartition(":")[2]) <= 65535 for a in addresses)
            for addresses in cluster.values()):
        raise ValueError('TF_CONFIG must hold "cluster": {job: ["host:port", …]} with at '
                         "least one address per job, each port in 0–65535; it holds "
                         f"{text[:120]!r}.")
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster or isinstance(
            task.get("index"), bool) or not isinstance(task.get("index"), int) or not (
            0 <= task["index"] < len(cluster[task["type"]])):
        raise ValueError('TF_CONFIG must hold "task": {"type": JOB, "index": I} naming one of '
                         f"the cluster's tasks ({', '.join(sorted(cluster))}); it holds "
                         f"{task!r}.")
    return config


def _cluster_tasks(config):
    """`(job, index, address)` of every task of the cluster but this one."""
    this = config["task"]
    return [(job, index, address)
            for job, addresses in config["cluster"].items()
            for index, address in enumerate(addresses)
            if (job, index) != (this["type"], this["index"])]


def _check_own_port(config):
    # TensorFlow's own failure ("Could not start gRPC server") names no port.
    task = config["task"]
    address = config["cluster"][task["type"]][task["index"]]
    port = int(address.rpartition(":")[2])
    for family in (socket.AF_INET6, socket.AF_INET):
        try:
            probe = socket.socket(family)
        except OSError:  # no IPv6 on this host
            continue
        with probe:
            # As gRPC binds: the connections a killed worker left in
            # TIME_WAIT do not hold the port, a listening process does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("", port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    return
                raise ValueError(
                    f"TF_CONFIG gives this process ({task['type']} {task['index']}) the "
                    f"address {address}, but port {port} is already in use on this machine; "
                    "stop what holds it or give this task another port."
                ) from None
        return


class WorkerLostError(RuntimeError):
    """Another worker of a multi-worker job stopped answering."""


# What TensorFlow's collectives and coordination service say when a peer
# is gone: its heartbeats stopped, or a collective was aborted for it.
_PEER_LOST = re.compile(r"unhealthy|stopped sending heartbeats|Collective ops is aborted",
                        re.IGNORECASE)
_PEER_LOST_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError,
                     tf.errors.CancelledError, tf.errors.InternalError)


@contextlib.contextmanager
def lost_workers_named(strategy):
    """Turn TensorFlow's report of a lost peer (a multi-line collective
    abort) into one `WorkerLostError` line naming the worker and saying how
    to resume. A no-op outside `MultiWorkerMirroredStrategy`.

    Args:
        strategy: the `tf.distribute.Strategy` the code inside runs under.

    Example:
    ```python
    import tensorflow as tf
    from kerasbert.training.distribute import lost_workers_named
    with lost_workers_named(tf.distribute.get_strategy()):
        pass  # one process: nothing to name
    ```
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    try:
        yield
    except _PEER_LOST_ERRORS as error:
        if not _PEER_LOST.search(str(error)):
            raise
        raise WorkerLostError(_lost_worker_message(str(error))) from None


def _lost_worker_message(message):
    try:
        config = cluster_config()
    except ValueError:  # a strategy built from another cluster resolver
        config = {"cluster": {}, "task": {}}
    cluster, this = config["cluster"], config["task"]
    # Only the tasks TensorFlow lists as unhealthy: other tasks a message
    # names (the one reporting, the coordination leader) are alive.
    found = re.search(r"unhealthy[^\n]*\n((?:\s*/job:\S+\s*\n?)+)", message, re.IGNORECASE)
    lost = []
    for job, index in re.findall(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)",
                                 found.group(1) if found else ""):
        task = (job, int(index))
        if task != (this.get("type"), this.get("index")) and task not in lost:
            lost.append(task)
    names = [f"{job} {index}" + (f" ({cluster[job][index]})" if index < len(cluster.get(job, []))
                                 else "") for job, index in lost]
    who = ", ".join(names) if names else "another worker"
    return (f"{who} stopped answering (crashed, killed or cut off), so this worker stops too; "
            "training progress up to the last step checkpoint, if one was written, is kept: "
            "start every worker again with the same command to resume.")


def make_strategy(name="default", tpu=None, cluster_timeout=DEFAULT_CLUSTER_TIMEOUT):
    """A `tf.distribute.Strategy` for `name`.

    - `"default"`: the default (no-op) strategy: one device.
    - `"mirrored"`: `MirroredStrategy` over all local GPUs (or the CPU).
    - `"multi_worker"`: `MultiWorkerMirroredStrategy`; the cluster comes from
      the `TF_CONFIG` environment variable of each worker. kerasbert trains
      under it with `TrainingLoop` (Keras 3.15's `fit` fails there, see
      docs/upstream/keras-multi-worker.md).
    - `"tpu"`: `TPUStrategy` on the TPU at `tpu` (a name or `grpc://` address;
      `None` or `"local"` for a TPU VM).

    Build models and optimizers inside `strategy.scope()`; `TrainingLoop`
    distributes `tf.data` input across replicas. Batch sizes given to
    kerasbert are global: each replica gets `batch_size / num_replicas`.

    Under `"multi_worker"` every worker must join within `cluster_timeout`
    seconds (checked by a first all-reduce); otherwise the process exits
    with a one-line error naming the workers that never answered.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        config = cluster_config()
        _check_own_port(config)
        watch = ClusterTimeout(cluster_timeout, _cluster_tasks(config))
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
            barrier(strategy)  # returns once every worker has joined
        finally:
            watch.disarm()
        return strategy
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "local")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"`strategy` must be one of {STRATEGIES}. Received: {name!r}")


def is_chief(strategy):
    """Whether this process writes the run's outputs.

    Under `MultiWorkerMirroredStrategy` the chief is the `chief` task when
    the cluster (`TF_CONFIG`) has one, else worker 0; every other strategy
    runs in one process, which is the chief.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    return is_chief_task(resolver.cluster_spec().as_dict(), resolver.task_type, resolver.task_id)


def is_chief_task(cluster, task_type, task_id):
    """Whether task `task_type`:`task_id` is the chief of `cluster` (a dict
    of job name → addresses, as in `TF_CONFIG`): the `chief` task when the
    cluster has one, else worker 0; a process outside any cluster is.

    Example:
    ```python
    from kerasbert.training.distribute import is_chief_task
    workers = {"worker": ["a:1", "b:1"]}
    is_chief_task(workers, "worker", 0), is_chief_task({"chief": ["c:1"], **workers}, "worker", 0)
    # (True, False)
    ```
    """
    if task_type is None:
        return True
    if "chief" in cluster:
        return task_type == "chief"
    return task_type == "worker" and task_id == 0


def barrier(strategy):
    """Wait until every worker of `strategy` reaches this point.

    A no-op in one process; under `MultiWorkerMirroredStrategy` an
    all-reduce of one number, so the chief's files written before it are
    complete when the other workers read them after it.
    """
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # In a tf.function: run eagerly, each collective logs a warning.
        tf.function(lambda: strategy.reduce(
            "SUM", strategy.run(lambda: tf.constant(1.0)), axis=None))()


def check_same_on_every_worker(strategy, value, what):
    """Raise on every worker unless all workers hold the same int `value`.

    Workers decide what to run from the chief's files; without a file
    system they all share, a worker would train other steps than the chief
    and the collectives would hang. No-op in one process.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    # Equal everywhere exactly when the mean of the squares is the square of
    # the mean (tf.distribute reduces by SUM or MEAN only).
    pair = tf.constant([value, value * value], tf.float64)
    mean, mean_square = tf.function(lambda: strategy.reduce(
        "MEAN", strategy.run(lambda: tf.identity(pair)), axis=None))().numpy()
    if mean_square != mean * mean:
        raise RuntimeError(
            f"The workers disagree on {what} (this one: {value}, mean {mean:g}): the output "
            "directory must be on a file system every worker shares."
        )
