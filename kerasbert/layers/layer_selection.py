"""Which encoder layers a head reads, and how their [CLS] vectors combine.

Layer numbering: 0 is the embeddings output (keras-hub's `embeddings_dropout`
layer), and i >= 1 is the output of `transformer_layer_{i-1}`, so an encoder
with L transformer layers has layers 0 … L.
"""

import keras

LAYER_SETS = ("first4", "last4", "all")
COMBINATIONS = ("concat", "mean", "max")


def resolve_layers(layers, num_layers):
    """Turn a layer choice into a sorted-as-given list of indices in 0 … L.

    Args:
        layers: int, list of ints, or one of `"first4"` (layers 1-4, the first
            four transformer layers), `"last4"` (L-3 … L) or `"all"` (1 … L,
            the transformer layers, as in the paper's "All 12"). Negative ints
            count from the end: -1 is L.
        num_layers: int. L, the number of transformer layers.

    Returns:
        A list of non-negative ints.
    """
    if isinstance(layers, str):
        if layers == "first4":
            indices = list(range(1, min(4, num_layers) + 1))
        elif layers == "last4":
            indices = list(range(max(1, num_layers - 3), num_layers + 1))
        elif layers == "all":
            indices = list(range(1, num_layers + 1))
        else:
            raise ValueError(
                f"`layers` must be an int, a list of ints, or one of {LAYER_SETS}. "
                f"Received: layers={layers!r}"
            )
        return indices
    if isinstance(layers, int):
        choice = [layers]
    elif isinstance(layers, (list, tuple)):
        choice = list(layers)
    else:
        raise ValueError(
            f"`layers` must be an int, a list of ints, or one of {LAYER_SETS}. "
            f"Received: layers={layers!r}"
        )
    if not choice:
        raise ValueError("`layers` must name at least one layer. Received: []")
    indices = []
    for index in choice:
        if not isinstance(index, int) or not -(num_layers + 1) <= index <= num_layers:
            raise ValueError(
                f"Layer indices must be ints in [-{num_layers + 1}, {num_layers}] "
                f"for an encoder of {num_layers} layers (0 = embeddings). "
                f"Received: layers={layers!r}"
            )
        indices.append(index % (num_layers + 1))
    if len(set(indices)) != len(indices):
        raise ValueError(f"`layers` names a layer twice. Received: layers={layers!r}")
    return indices


def layer_name(index):
    """The keras-hub `BertBackbone` layer whose output is layer `index`."""
    return "embeddings_dropout" if index == 0 else f"transformer_layer_{index - 1}"


def cls_states(backbone, indices):
    """Symbolic [CLS] vectors of the chosen layers, from one backbone pass.

    keras-hub's `BertBackbone` is a functional model whose layers are each
    called once, so every layer's output is a symbolic tensor that hangs off
    `backbone.input`.
    """
    return [backbone.get_layer(layer_name(i)).output[:, 0, :] for i in indices]


def combiner(combine, num_inputs, dtype=None):
    """A Keras merge layer for `combine`, or `None` for a single input."""
    if num_inputs == 1:
        return None
    merge_layers = {
        "concat": keras.layers.Concatenate,
        "mean": keras.layers.Average,
        "max": keras.layers.Maximum,
    }
    return merge_layers[combine](dtype=dtype, name=f"layer_{combine}")
