"""Layer-wise decreasing learning rates (Sun et al. 2019, §4.3).

The rate of encoder depth k follows η^(k−1) = ξ·η^k with the base rate on the
top layer, so a variable at depth d of an L-layer encoder trains at
η · ξ^(L − d). Depth comes from the variable path of a keras-hub BERT:
embeddings are depth 0, `transformer_layer_i/…` is depth i + 1, and
everything else (pooler, classification heads) is the top, depth L.

Keras 3 optimizers take one learning rate, and scaling gradients instead does
not work with Adam, which is invariant to gradient scale. So `LayerwiseDecay`
wraps any Keras optimizer and hands its `update_step` a learning rate scaled
per variable. The multipliers are computed in `build`, where the variables
still carry their paths, and looked up in `update_step` by variable index, as
Keras' own `Adam` finds its slots; this keeps `tf.distribute`, loss scaling
and gradient clipping (all handled in Keras' `apply`) untouched.
"""

import re

import keras
from keras import ops

from kerasbert.optimizers.optimizer_wrapper import OptimizerWrapper
from kerasbert.optimizers.optimizer_wrapper import wrapped_optimizers

CONVENTIONS = ("paper", "official_code")
# keras-hub BERT embedding variables: token_embedding/…, position_embedding/…,
# segment_embedding/…, embeddings_layer_norm/….
_EMBEDDING_PATH = re.compile(r"(^|/)[a-z_]*embedding[a-z_]*/")
_TRANSFORMER_LAYER_PATH = re.compile(r"(^|/)transformer_layer_(\d+)/")
# Variables BERT's own optimizer keeps out of weight decay.
LAYER_NORM_AND_BIAS = (r"(^|/)bias$", r"layer_norm/(gamma|beta)$")


def variable_depth(path, num_layers):
    """The encoder depth of a variable: 0 embeddings, i + 1 layer i, L the rest."""
    match = _TRANSFORMER_LAYER_PATH.search(path)
    if match:
        return int(match.group(2)) + 1
    if _EMBEDDING_PATH.search(path):
        return 0
    return num_layers


def _count_layers(paths):
    depths = [int(m.group(2)) + 1 for m in map(_TRANSFORMER_LAYER_PATH.search, paths) if m]
    return max(depths, default=0)


def multipliers_for_paths(paths, decay, convention="paper", overrides=None, num_layers=None):
    """{path: learning-rate multiplier} for the given variable paths.

    Args:
        paths: list of str. Variable paths such as
            `"transformer_layer_3/self_attention_layer/query/kernel"`.
        decay: float. ξ, the factor between adjacent layers.
        convention: str. `"paper"`: embeddings continue the decay (ξ^L).
            `"official_code"`: embeddings, pooler and heads at the base rate,
            as the paper's released code does.
        overrides: dict or None. {path regex: multiplier}; the first regex that
            matches a path (`re.search`) sets its multiplier.
        num_layers: int or None. L; inferred from the highest
            `transformer_layer_i` in `paths` when None.

    Returns:
        A dict from path to float multiplier.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"`convention` must be one of {CONVENTIONS}. Received: {convention!r}")
    if not 0 < decay <= 1:
        raise ValueError(f"`decay` must be in (0, 1]. Received: {decay}")
    num_layers = _count_layers(paths) if num_layers is None else num_layers
    overrides = [(re.compile(p), float(m)) for p, m in (overrides or {}).items()]
    table = {}
    for path in paths:
        depth = variable_depth(path, num_layers)
        if depth == 0 and convention == "official_code":
            depth = num_layers
        multiplier = decay ** (num_layers - depth)
        for pattern, value in overrides:
            if pattern.search(path):
                multiplier = value
                break
        table[path] = multiplier
    return table


def layerwise_multipliers(model, decay=0.95, convention="paper", multipliers=None):
    """The {variable path: multiplier} table `LayerwiseDecay` uses for `model`.

    Covers the model's trainable variables. L is the backbone's `num_layers`
    when the model has a `backbone`, else inferred from the paths.

    Examples:
    ```python
    backbone, _ = kerasbert.load_backbone("tiny")
    model = kerasbert.LayerSelectedClassifier(backbone, num_classes=2)
    table = kerasbert.optimizers.layerwise_multipliers(model, decay=0.9)
    table["transformer_layer_0/self_attention_layer/query/kernel"]  # 0.9
    table["token_embedding/embeddings"]  # 0.81
    ```
    """
    backbone = getattr(model, "backbone", None)
    num_layers = getattr(backbone, "num_layers", None)
    paths = [v.path for v in model.trainable_variables]
    return multipliers_for_paths(paths, decay, convention, multipliers, num_layers)


def format_multiplier_table(table, base_learning_rate):
    """A human-readable table of the effective rate per layer group."""
    groups = {}
    for path, multiplier in table.items():
        match = _TRANSFORMER_LAYER_PATH.search(path)
        if match:
            group = f"transformer_layer_{match.group(2)}"
        elif _EMBEDDING_PATH.search(path):
            group = "embeddings"
        else:
            group = path.split("/")[0]
        groups.setdefault(group, set()).add(multiplier)
    lines = [f"{'layer group':<24} {'multiplier':>10} {'learning rate':>14}"]
    for group, values in sorted(groups.items(), key=lambda item: min(item[1])):
        shown = "/".join(f"{v:.4f}" for v in sorted(values))
        rates = "/".join(f"{base_learning_rate * v:.3e}" for v in sorted(values))
        lines.append(f"{group:<24} {shown:>10} {rates:>14}")
    return "\n".join(lines)


@keras.saving.register_keras_serializable(package="kerasbert")
class LayerwiseDecay(OptimizerWrapper):
    """Per-variable learning-rate multipliers for any Keras 3 optimizer.

    Wraps `inner_optimizer` (Adam, AdamW, SGD, `FusedAdam`, …) and gives each
    variable at encoder depth d of an L-layer BERT the learning rate
    `lr · ξ^(L − d)` (see `layerwise_multipliers`): the learning rate the
    inner `update_step` receives is scaled, not the gradient, so the
    scaling holds for scale-invariant optimizers like Adam too. Learning
    rate or schedule, betas, clipping and the step count stay the inner
    optimizer's; `isinstance(optimizer, LayerwiseDecay)` tells whether an
    optimizer has layer-wise rates. `layerwise_decay` is the same call.

    Decoupled weight decay (the inner optimizer's `weight_decay`) is applied
    per variable with the same multiplier as its learning rate:
    `v ← v − v · weight_decay · η · ξ^(L − d)`, before the update step, as
    Keras does for the global rate. Variables matching a regex of
    `weight_decay_exclusions` (for BERT's practice, `LAYER_NORM_AND_BIAS`), or
    excluded with `exclude_from_weight_decay`, are not decayed.

    Under `LazyUpdates` (`LazyUpdates(LayerwiseDecay(...))`) a lazy variable
    skips its weight decay along with its update on steps without a
    gradient; inside it (`LayerwiseDecay(LazyUpdates(...))`) it is decayed
    on every step.

    Args:
        inner_optimizer: `keras.optimizers.Optimizer`. The optimizer to
            wrap, not yet built.
        decay: float. ξ, in (0, 1]. Defaults to `0.95`, the paper's best.
        convention: str. `"paper"`: embeddings continue the decay (ξ^L);
            `"official_code"`: embeddings, pooler and heads at the base rate.
            Defaults to `"paper"`.
        multipliers: dict or None. {variable-path regex: multiplier}
            overrides; the first match wins. Defaults to `None`.
        num_layers: int or None. L; inferred from the variable paths when
            `None`. Defaults to `None`.
        weight_decay_exclusions: list of str or None. Regexes of variable
            paths kept out of weight decay, e.g. `LAYER_NORM_AND_BIAS`.
            Defaults to `None`.
        name: str or None. The wrapper's name.

    Examples:
    ```python
    backbone, _ = kerasbert.load_backbone("tiny")
    model = kerasbert.LayerSelectedClassifier(backbone, num_classes=2)
    optimizer = kerasbert.LayerwiseDecay(keras.optimizers.SGD(0.1), decay=0.5)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    optimizer.inner_optimizer  # the SGD, whose update rule runs
    ```

    References:
    - [Sun et al., 2019](https://arxiv.org/abs/1905.05583), §4.3 and Table 4.
    """

    def __init__(
        self,
        inner_optimizer,
        decay=0.95,
        convention="paper",
        multipliers=None,
        num_layers=None,
        weight_decay_exclusions=None,
        name=None,
    ):
        # Fail on bad arguments now rather than at the first step.
        multipliers_for_paths([], decay, convention, multipliers, num_layers)
        if any(isinstance(o, LayerwiseDecay) for o in wrapped_optimizers(inner_optimizer)):
            raise ValueError("`inner_optimizer` already has layer-wise learning rates.")
        super().__init__(inner_optimizer, name=name)
        self.decay = decay
        self.convention = convention
        self.multipliers = dict(multipliers) if multipliers else None
        self.num_layers = num_layers
        self.weight_decay_exclusions = (
            list(weight_decay_exclusions) if weight_decay_exclusions else None
        )

    def build(self, var_list):
        super().build(var_list)
        paths = [v.path for v in var_list]
        self.multiplier_table = multipliers_for_paths(
            paths, self.decay, self.convention, self.multipliers, self.num_layers
        )
        self._variable_multipliers = [self.multiplier_table[p] for p in paths]
        exclusions = [re.compile(p) for p in self.weight_decay_exclusions or ()]
        self._variable_decays_weight = [
            self.weight_decay is not None
            and self._use_weight_decay(v)
            and not any(p.search(v.path) for p in exclusions)
            for v in var_list
        ]

    def _apply_weight_decay(self, variables):
        # Applied per variable in `update_step`, at the variable's own rate.
        pass

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        learning_rate = ops.cast(learning_rate, variable.dtype) * self._variable_multipliers[index]
        if self._variable_decays_weight[index]:
            weight_decay = ops.cast(self.weight_decay, variable.dtype)
            variable.assign(variable - variable * weight_decay * learning_rate)
        self.inner_optimizer.update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "decay": self.decay,
                "convention": self.convention,
                "multipliers": self.multipliers,
                "num_layers": self.num_layers,
                "weight_decay_exclusions": self.weight_decay_exclusions,
            }
        )
        return config


def layerwise_decay(
    optimizer,
    decay=0.95,
    convention="paper",
    multipliers=None,
    num_layers=None,
    weight_decay_exclusions=None,
):
    """Give any Keras 3 optimizer layer-wise decreasing learning rates.

    Wraps `optimizer` in a `LayerwiseDecay`, which keeps its configuration
    (learning rate or schedule, betas, weight decay, clipping…) and update
    rule and in which a variable at encoder depth d of an L-layer BERT
    trains at `lr · ξ^(L − d)`: the top transformer layer and the head at
    `lr`, each layer below at ξ times the one above (Sun et al. 2019, eq. 4).
    See `layerwise_multipliers` for the table it uses.

    Args:
        optimizer: a `keras.optimizers.Optimizer` instance (AdamW, Adam,
            SGD, …), not yet built.
        decay: float. ξ. Defaults to `0.95`, the paper's best.
        convention: str. `"paper"`: embeddings continue the decay (ξ^L);
            `"official_code"`: embeddings, pooler and heads at the base rate.
        multipliers: dict or None. {variable-path regex: multiplier}
            overrides; the first match wins.
        num_layers: int or None. L; inferred from the variable paths.
        weight_decay_exclusions: list of str or None. Regexes of variable
            paths kept out of weight decay, e.g. `LAYER_NORM_AND_BIAS`.
            Decoupled weight decay is scaled by each variable's multiplier.

    Returns:
        A `LayerwiseDecay` wrapping `optimizer` (which is not copied).

    Examples:
    ```python
    backbone, _ = kerasbert.load_backbone("tiny")
    model = kerasbert.LayerSelectedClassifier(backbone, num_classes=2)
    optimizer = kerasbert.optimizers.layerwise_decay(keras.optimizers.AdamW(2e-5), decay=0.95)
    model.compile(optimizer=optimizer)
    ```

    References:
    - [Sun et al., 2019](https://arxiv.org/abs/1905.05583), §4.3 and Table 4.
    """
    return LayerwiseDecay(
        optimizer,
        decay=decay,
        convention=convention,
        multipliers=multipliers,
        num_layers=num_layers,
        weight_decay_exclusions=weight_decay_exclusions,
    )
