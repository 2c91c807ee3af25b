"""The training state of a Keras model as a tree of named variables, for
`tf.train.Checkpoint`.

Keras 3 objects are only partly trackable by `tf.train.Checkpoint`: the
layers of a functional or `Sequential` model live in Keras lists that
TensorFlow does not follow, `SeedGenerator`s (dropout's random state) are
not trackable at all, and the optimizer saves the model's variables as a
positional list. So kerasbert builds the object graph itself, from the
places Keras' own `.weights.h5` saving walks (keras `saving/saving_lib.py`),
and hands `tf.train.Checkpoint` nested dicts of variables:

- a layer's own variables under their names (`kernel`, `bias`,
  `embeddings` …);
- its sublayers and seed generators under the attribute that holds them
  (`token_embedding`, `transformer_layers/3`, `seed_generator/state`);
- the layers of a functional or `Sequential` model, which no attribute
  holds, under `layers/` by class name in the model's order (`dense`,
  `dense_1`), as `.weights.h5` names them: auto-generated layer names
  (`dense_7`) change from one build to the next;
- an optimizer's per-variable slots under the name of the model variable
  they belong to (`optimizer/_momentums/model/layers/dense/kernel`), its
  other variables under their attributes;
- the compiled metrics' running totals under their paths (`loss/total`).

A variable that none of these places reaches is kept under `unplaced/` by
its Keras path, so nothing goes unsaved. The walk reads the bookkeeping
Keras' own saving reads (`_trainable_variables`, `_seed_generators`,
`_tracked`; checked on Keras 3.15).
"""

import re

import keras
import tensorflow as tf

# Keras' own bookkeeping attributes: positional lists of what the named
# attributes already hold, or graph structure.
_SKIPPED_ATTRIBUTES = frozenset({
    "_layers", "_tracker", "_metrics", "_seed_generators", "_trainable_variables",
    "_non_trainable_variables", "_operations", "_functional", "_inbound_nodes",
    "_outbound_nodes", "_compile_metrics", "_compile_loss", "_loss_tracker", "optimizer",
    "_variables", "_trainable_variables_indices",
})


def training_state(model, *, optimizer=True, metrics=True):
    """The named variables of `model`'s training state.

    Args:
        model: a built `keras.Model`.
        optimizer: bool. Include `model.optimizer` (built) under
            `optimizer`.
        metrics: bool. Include the compiled metrics under `metrics`.

    Returns:
        `(tree, paths)`: nested dicts whose leaves are the variables (for
        `tf.train.Checkpoint(**tree)`), and a dict of every variable's
        first path (`"model/layers/dense/kernel"`) keyed by `id`.
    """
    paths = {}
    tree = {"model": _placed(_layer_node(model, {}), model.variables, "model", paths)}
    if optimizer:
        node = _optimizer_node(model.optimizer, paths, {})
        tree["optimizer"] = _placed(node, model.optimizer.variables, "optimizer", paths)
    if metrics:
        node = {}
        for variable in model.metrics_variables:
            node[_unique(variable.path, node)] = variable
        tree["metrics"] = _placed(node, model.metrics_variables, "metrics", paths)
    return tree, paths


def leaf_paths(tree, names=()):
    """`(names, variable)` for every leaf of `tree`, depth first, `names`
    being the tuple of keys that leads to it (a shared variable once per
    path)."""
    for name, child in tree.items():
        if isinstance(child, dict):
            yield from leaf_paths(child, names + (name,))
        else:
            yield names + (name,), child


def _placed(node, variables, prefix, paths):
    # Record each variable's first path, and keep the ones the walk missed.
    for names, variable in leaf_paths(node, (prefix,)):
        paths.setdefault(id(variable), "/".join(names))
    unplaced = {}
    for variable in variables:
        if id(variable) not in paths:
            key = _unique(variable.path, unplaced)
            unplaced[key] = variable
            paths[id(variable)] = f"{prefix}/unplaced/{key}"
    if unplaced:
        node = dict(node, unplaced=unplaced)
    return node


def _layer_node(layer, memo):
    if id(layer) in memo:
        return memo[id(layer)]  # a shared layer: the same node
    memo[id(layer)] = None  # a reference back to a layer being walked: left out
    node = {}
    for variable in list(layer._trainable_variables) + list(layer._non_trainable_variables):
        node[_unique(variable.name, node)] = variable
    for name, value in sorted(_attributes(layer).items()):
        child = _child(value, memo)
        if child:
            node[_unique(name, node)] = child
    reached = {id(v) for _, v in leaf_paths(node)}
    sublayers = layer.layers if isinstance(layer, keras.Model) else []
    if any(id(v) not in reached for sublayer in sublayers for v in sublayer.variables):
        # A functional or Sequential model: its layers are no attributes.
        layers, used = {}, set()
        for sublayer in sublayers:
            name = _unique(_snake_case(type(sublayer).__name__), used)
            used.add(name)
            child = _layer_node(sublayer, memo)
            if child:
                layers[name] = child
        node[_unique("layers", node)] = layers
    for i, generator in enumerate(layer._seed_generators):
        if id(generator.state) not in reached:
            node.setdefault("seed_generators", {})[str(i)] = {"state": generator.state}
    memo[id(layer)] = node
    return node


def _attributes(layer):
    # The attributes TensorFlow tracks (layers, variables), the Keras
    # containers (lists, dicts of layers) and the seed generators.
    attributes = {
        name: value for name, value in layer._trackable_children().items()
        if isinstance(value, keras.layers.Layer) and name not in _SKIPPED_ATTRIBUTES
    }
    for name in getattr(layer, "_tracked", ()):
        if name not in _SKIPPED_ATTRIBUTES:
            attributes[name] = getattr(layer, name, None)
    for name, value in vars(layer).items():
        if isinstance(value, keras.random.SeedGenerator):
            attributes[name] = value
    return attributes


def _child(value, memo):
    if isinstance(value, keras.layers.Layer):
        return _layer_node(value, memo)
    if isinstance(value, keras.random.SeedGenerator):
        return {"state": value.state}
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        return None
    node = {}
    for key, item in items:
        child = _child(item, memo)
        if child:
            node[key] = child
    return node


def _optimizer_node(optimizer, model_paths, memo):
    if id(optimizer) in memo:
        return memo[id(optimizer)]
    node = memo[id(optimizer)] = {}
    references = list(getattr(optimizer, "_trainable_variables", []))
    for name in sorted(vars(optimizer)):
        value = vars(optimizer)[name]
        if name in _SKIPPED_ATTRIBUTES:
            continue
        if isinstance(value, (keras.Variable, tf.Variable)):
            node[name] = value
        elif isinstance(value, keras.optimizers.Optimizer):
            node[name] = _optimizer_node(value, model_paths, memo)
        elif (isinstance(value, (list, tuple)) and value
              and all(isinstance(v, (keras.Variable, tf.Variable)) for v in value)):
            slots = len(value) == len(references) and all(
                tuple(v.shape) == tuple(r.shape) and id(r) in model_paths
                for v, r in zip(value, references)
            )
            # One slot per trained variable, named after it; else by index.
            keys = [model_paths[id(r)] for r in references] if slots else range(len(value))
            node[name] = {str(k): v for k, v in zip(keys, value)}
    return node


def _snake_case(name):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _unique(name, taken):
    if name not in taken:
        return name
    i = 1
    while f"{name}_{i}" in taken:
        i += 1
    return f"{name}_{i}"
