"""A run's training checkpoints: `tf.train.Checkpoint`s of named variables,
each with its JSON state, written whole or not at all."""

import glob
import os

import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import trackable_object_graph_pb2

from kerasbert.training.distribute import is_chief
from kerasbert.training.variable_graph import leaf_paths
from kerasbert.training.variable_graph import training_state
from kerasbert.utils.files import atomic_path
from kerasbert.utils.files import read_json
from kerasbert.utils.files import remove_path
from kerasbert.utils.files import write_json

LATEST_CHECKPOINT = "latest.json"
BEST_CHECKPOINT = "best"
STEP_PREFIX = "step-"
VARIABLES = "variables"  # the tf.train.Checkpoint prefix inside a checkpoint
STATE_FILE = "state.json"
# Where a non-chief worker writes its share of a collective save, then
# deletes it (TensorFlow's multi-worker checkpointing pattern).
WORKER_TEMP_PREFIX = ".workertemp_"
_OVERWRITE = "pass --overwrite (overwrite=True) to start afresh"


def last_saved_step(run_directory):
    """The step of the newest step checkpoint of `run_directory` (its
    `checkpoints/`, or a nested run's: a multi-task run's joint phase or
    per-task runs), or None when none was saved yet."""
    root = glob.escape(run_directory)
    pointers = (glob.glob(os.path.join(root, "checkpoints", LATEST_CHECKPOINT))
                + glob.glob(os.path.join(root, "*", "checkpoints", LATEST_CHECKPOINT)))
    for pointer in sorted(pointers, key=os.path.getmtime, reverse=True):
        try:
            return int(read_json(pointer)["step"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


class CheckpointDirectory:
    """The checkpoints of one training run, in `path`.

    Each checkpoint is a directory, `step-00000120/` or `best/`, renamed
    into place once complete: `variables.index` and `variables.data-*` (a
    `tf.train.Checkpoint` of the training state, by name, see
    `kerasbert.training.variable_graph`) and `state.json` (the step, the
    history and the best epoch). `latest.json` names the last one written;
    should it be unreadable or name a missing checkpoint, the newest
    `step-*` is used. The last `keep` step checkpoints stay on disk.

    A checkpoint restores only into a model built the same way: before any
    variable is assigned, every variable's place and shape is looked up in
    the checkpoint's object graph, and the first mismatch (either way) is
    named in a `ValueError`. A checkpoint whose files are unreadable, and a
    directory of `.npz` checkpoints (written by kerasbert before it named
    variables), are refused in one line.

    Saving is collective under `MultiWorkerMirroredStrategy` (reading a
    metric's total sums over the workers): every worker saves, the chief
    into `path`, the others into a temporary directory they delete.

    Args:
        path: str. The checkpoint directory (`run/checkpoints`).
        strategy: `tf.distribute.Strategy`.
        keep: int. How many step checkpoints stay on disk.
    """

    def __init__(self, path, strategy, keep=1):
        self.path = path
        self.strategy = strategy
        self.keep = keep
        self.chief = is_chief(strategy)

    # === Saving ===

    def save(self, model, step, state, final=False):
        """Checkpoint `model`'s training state (model, optimizer, metrics,
        dropout seeds) as of `step`, with the JSON-ready `state`.

        The `final` checkpoint of a finished training holds the model's
        variables alone: nothing trains from it again, so the optimizer's
        slots (twice the weights under Adam) are not kept."""
        name = f"{STEP_PREFIX}{step:08d}"
        tree, _ = training_state(model, optimizer=not final, metrics=not final)
        self._write(name, tree, {"step": step, **state, "final": final}, step)
        if self.chief:
            write_json(os.path.join(self.path, LATEST_CHECKPOINT),
                       {"checkpoint": name, "step": step})
            for old in self._saved()[: -self.keep]:
                remove_path(os.path.join(self.path, old))

    def save_best(self, model, state):
        """Checkpoint `model`'s variables alone as the best ones so far."""
        tree, _ = training_state(model, optimizer=False, metrics=False)
        self._write(BEST_CHECKPOINT, tree, state, 0)

    def _write(self, name, tree, state, step):
        checkpoint = _checkpoint(tree, step)
        if not self.chief:
            resolver = self.strategy.cluster_resolver
            temporary = os.path.join(self.path, f"{WORKER_TEMP_PREFIX}{resolver.task_id}")
            os.makedirs(temporary, exist_ok=True)
            checkpoint.write(os.path.join(temporary, VARIABLES))
            remove_path(temporary)
            return
        with atomic_path(os.path.join(self.path, name)) as partial:
            os.makedirs(partial)
            checkpoint.write(os.path.join(partial, VARIABLES))
            write_json(os.path.join(partial, STATE_FILE), state)

    # === Restoring ===

    def latest(self):
        """The name of the last complete step checkpoint, or None."""
        if not os.path.isdir(self.path):
            return None
        old = sorted(n for n in os.listdir(self.path) if n.endswith(".npz"))
        if old:
            raise ValueError(
                f"{os.path.join(self.path, old[-1])} is a checkpoint of an older kerasbert "
                f"(variables by position), which this version does not read; {_OVERWRITE}."
            )
        pointer = os.path.join(self.path, LATEST_CHECKPOINT)
        if not os.path.exists(pointer):
            return None
        try:
            name = read_json(pointer)["checkpoint"]
            if os.path.isfile(os.path.join(self.path, name, STATE_FILE)):
                return name
        except (OSError, ValueError, KeyError, TypeError):
            pass
        saved = self._saved()
        if not saved:
            raise ValueError(
                f"{pointer} names no readable checkpoint and {self.path} holds none; "
                f"{_OVERWRITE}."
            )
        return saved[-1]

    def has_best(self):
        return os.path.isfile(os.path.join(self.path, BEST_CHECKPOINT, STATE_FILE))

    def restore(self, model, name=None, *, model_only=False):
        """Load checkpoint `name` (default: the latest) into `model`; return
        its JSON state, or None without a checkpoint.

        With `model_only`, only the model's variables are loaded (the
        optimizer and metrics need not be built).
        """
        name = name or self.latest()
        if name is None:
            return None
        directory = os.path.join(self.path, name)
        state_file = os.path.join(directory, STATE_FILE)
        try:
            state = read_json(state_file)
        except (OSError, ValueError) as error:
            raise ValueError(f"Checkpoint file {state_file} is unreadable ({error}); "
                             f"{_OVERWRITE}.") from None
        # A final checkpoint holds the model alone (see `save`).
        model_only = model_only or bool(state.get("final"))
        tree, _ = training_state(model, optimizer=not model_only, metrics=not model_only)
        prefix = os.path.join(directory, VARIABLES)
        keys = self._check_fits(prefix, tree)
        step = state.get("step", 0)
        checkpoint = _checkpoint(tree, step, with_step=not model_only)
        try:
            status = checkpoint.read(prefix)
        except (tf.errors.OpError, IndexError) as error:
            raise _unreadable(prefix, error, data=True) from None
        if model_only:
            status.expect_partial()
        status.assert_existing_objects_matched()
        if not model_only:
            self._restore_summed_totals(prefix, tree, keys)
        if not model_only and int(checkpoint.step.numpy()) != step:
            raise ValueError(f"Checkpoint {directory} holds step {int(checkpoint.step.numpy())} "
                             f"but its {STATE_FILE} says {step}; {_OVERWRITE}.")
        return state

    def _check_fits(self, prefix, tree):
        # Every variable's place and shape in the checkpoint's object graph,
        # before anything is assigned; then anything the checkpoint holds
        # under the same roots that this model lacks.
        try:
            reader = tf.train.load_checkpoint(prefix)
            shapes = reader.get_variable_to_shape_map()
        except (tf.errors.OpError, ValueError, IndexError) as error:
            raise _unreadable(prefix, error, data=False) from None
        try:
            graph = trackable_object_graph_pb2.TrackableObjectGraph()
            graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
        except (tf.errors.OpError, DecodeError, ValueError, IndexError) as error:
            raise _unreadable(prefix, error, data=True) from None
        expected, keys = set(), {}
        for names, variable in leaf_paths(tree):
            node = _find(graph, names)
            key = None if node is None else next(
                (a.checkpoint_key for a in graph.nodes[node].attributes
                 if a.name == "VARIABLE_VALUE"), None)
            if key is None:
                self._refuse(prefix, f"{'/'.join(names)} is not in it")
            if list(shapes[key]) != list(variable.shape):
                self._refuse(prefix, f"{'/'.join(names)} has shape {tuple(shapes[key])} there "
                                     f"and {tuple(variable.shape)} here")
            expected.add(key)
            keys[names] = key
        for names, key in _saved_variables(graph, tree.keys()):
            if key not in expected:
                self._refuse(prefix, f"its {'/'.join(names)} is not in this model")
        return keys

    def _restore_summed_totals(self, prefix, tree, keys):
        # A sum-aggregated metric total restored by `tf.train.Checkpoint` is
        # divided among the replicas, which rounds differently from the
        # uninterrupted run; the first replica takes it whole instead, as
        # the running replicas' partial sums would have it.
        if self.strategy.num_replicas_in_sync == 1:
            return
        reader = tf.train.load_checkpoint(prefix)
        for names, variable in leaf_paths(tree):
            if getattr(variable, "synchronization", None) not in (
                    "on_read", tf.VariableSynchronization.ON_READ):
                continue
            value = tf.constant(reader.get_tensor(keys[names]))

            def assign_on_replica(variable=variable, value=value):
                replica = tf.distribute.get_replica_context().replica_id_in_sync_group
                variable.assign(tf.where(replica == 0, value, tf.zeros_like(value)))

            self.strategy.run(assign_on_replica)

    def _refuse(self, prefix, mismatch):
        raise ValueError(
            f"Checkpoint {os.path.dirname(prefix)} does not fit this model: {mismatch}. Was the "
            f"model built with other settings? If so, {_OVERWRITE}."
        )

    def _saved(self):
        return sorted(n for n in os.listdir(self.path) if n.startswith(STEP_PREFIX)
                      and os.path.isfile(os.path.join(self.path, n, STATE_FILE)))


def _checkpoint(tree, step, with_step=True):
    # tf.train.Checkpoint wraps (and rewrites) the dicts it is given: hand it copies.
    def copy(node):
        return {k: copy(v) for k, v in node.items()} if isinstance(node, dict) else node

    objects = copy(tree)
    if with_step:
        objects["step"] = tf.Variable(step, dtype=tf.int64, trainable=False)
    return tf.train.Checkpoint(**objects)


def _find(graph, names):
    node = 0
    for name in names:
        node = next((c.node_id for c in graph.nodes[node].children if c.local_name == name), None)
        if node is None:
            return None
    return node


def _saved_variables(graph, roots):
    """`(names, checkpoint_key)` of every variable under the root's children
    `roots`, depth first in the order of `roots`."""
    seen = set()

    def walk(names, node):
        if node in seen:
            return
        seen.add(node)
        for attribute in graph.nodes[node].attributes:
            if attribute.name == "VARIABLE_VALUE":
                yield names, attribute.checkpoint_key
        for child in graph.nodes[node].children:
            yield from walk(names + (child.local_name,), child.node_id)

    children = {c.local_name: c.node_id for c in graph.nodes[0].children}
    for root in roots:
        if root in children:
            yield from walk((root,), children[root])


def _unreadable(prefix, error, data):
    files = sorted(glob.glob(prefix + ".data-*")) if data else []
    file = files[0] if files else prefix + ".index"
    reason = str(getattr(error, "message", error)).strip().splitlines()
    reason = reason[0] if reason else type(error).__name__
    return ValueError(f"Checkpoint file {file} is unreadable ({reason}); {_OVERWRITE}.")
