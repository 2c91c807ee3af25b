"""Adam(W) whose update is one pass over each variable's memory."""

import re

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kerasbert")
class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam with the update step fused into one TensorFlow kernel.

    Keras' `Adam.update_step` is about a dozen element-wise TensorFlow ops
    per variable (subtract, multiply, add, square, sqrt, divide and three
    assignments), each one a pass over the variable's memory. On a CPU, where
    the step of a 22M-parameter BERT is memory-bound, that is a third of a
    training step. `FusedAdam` computes the same update (the same formula,
    in the same order) with TensorFlow's `ResourceApplyAdam` kernel, which
    reads the gradient, both moments and the variable once and writes them
    once. Everything around the update stays Keras': the learning rate and
    its schedules, decoupled weight decay (`weight_decay`, as
    `keras.optimizers.AdamW`), clipping, loss scaling, gradient
    accumulation, `tf.distribute`, saving.

    `sparse_variables` opts into LazyAdam-style updates (TensorFlow Addons'
    `LazyAdam`): for variables whose path matches one of these regexes, such
    as the word-embedding table, only the rows that have a gradient this
    step are updated — their moments and values — and the other rows keep
    their moments and values (a row whose gradient is exactly zero, such as
    a masked padding token's, counts as untouched). This departs from Adam as the paper (and
    PyTorch) ran it, where every row moves by its momentum on every step;
    it is an opt-in speed switch, not the default. Rows come from the
    gradient's `tf.IndexedSlices` (an embedding lookup's gradient), or, when
    something densified it on the way (float16 loss scaling, clipping,
    cross-replica sums), from its non-zero rows. Untested under XLA beyond
    one CPU run (the rows are a data-dependent shape; `fine_tune` refuses the
    combination); Keras' `jit_compile="auto"` is XLA on a GPU. With
    weight decay, every row of a sparse variable is decayed every step, as in
    `AdamW`. `amsgrad=True` uses Keras' own update and cannot be combined
    with `sparse_variables`.

    Args:
        sparse_variables: list of str or None. Regexes (`re.search`) on
            variable paths whose updates are row-sparse, e.g.
            `[r"token_embedding/"]`.
        **kwargs: the arguments of `keras.optimizers.Adam` (`learning_rate`,
            `beta_1`, `beta_2`, `epsilon`, `amsgrad`, `weight_decay`,
            `clipnorm`, ...).

    Examples:
    ```python
    backbone, _ = kerasbert.load_backbone("tiny")
    model = kerasbert.LayerSelectedClassifier(backbone, num_classes=2)
    model.compile(optimizer=kerasbert.optimizers.FusedAdam(2e-5, epsilon=1e-6))
    lazy_embeddings = kerasbert.optimizers.FusedAdam(
        2e-5, sparse_variables=[r"token_embedding/"]
    )
    ```
    """

    def __init__(self, *args, sparse_variables=None, **kwargs):
        super().__init__(*args, **kwargs)
        if sparse_variables is not None and (
                not isinstance(sparse_variables, (list, tuple))
                or not all(isinstance(p, str) for p in sparse_variables)):
            raise ValueError(
                "`sparse_variables` must be a list of regexes (str). "
                f"Received: {sparse_variables!r}"
            )
        if sparse_variables and self.amsgrad:
            raise ValueError("`sparse_variables` is not supported with `amsgrad=True`.")
        self.sparse_variables = list(sparse_variables or [])
        try:
            self._sparse_patterns = [re.compile(p) for p in self.sparse_variables]
        except re.error as error:
            raise ValueError(f"`sparse_variables` holds an invalid regex: {error}") from None

    def build(self, var_list):
        super().build(var_list)
        self._variable_is_sparse = [
            any(p.search(v.path) for p in self._sparse_patterns) for v in var_list
        ]
        for variable, sparse in zip(var_list, self._variable_is_sparse):
            if sparse and len(variable.shape) < 2:
                raise ValueError(
                    f"`sparse_variables` matched {variable.path} of shape {variable.shape}; "
                    "row-sparse updates need a table of rank 2 or more."
                )
        if self.sparse_variables and not any(self._variable_is_sparse):
            raise ValueError(
                f"`sparse_variables` {self.sparse_variables} matched none of the "
                f"{len(var_list)} variables (e.g. {[v.path for v in var_list[:3]]})."
            )

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        # As Keras' Adam does (tf.cast keeps tf.IndexedSlices sparse).
        gradient = tf.cast(gradient, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        arguments = dict(
            m=self._momentums[index],
            v=self._velocities[index],
            beta_1=beta_1,
            beta_2=beta_2,
            beta_1_power=tf.pow(beta_1, step),
            beta_2_power=tf.pow(beta_2, step),
            learning_rate=tf.cast(learning_rate, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
        )
        variable = _tf_variable(variable)
        if self._variable_is_sparse[index]:
            _sparse_adam_update(gradient, variable, **arguments)
        else:
            _dense_adam_update(tf.convert_to_tensor(gradient), variable, **arguments)

    def get_config(self):
        config = super().get_config()
        config["sparse_variables"] = self.sparse_variables
        return config


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


def _dense_adam_update(
    gradient, variable, m, v, beta_1, beta_2, beta_1_power, beta_2_power, learning_rate, epsilon
):
    # TensorFlow's kernel: alpha = lr·√(1−β₂ᵗ)/(1−β₁ᵗ); m += (g − m)(1 − β₁);
    # v += (g² − v)(1 − β₂); variable −= alpha·m/(√v + ε) — Keras' formula.
    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle,
        m=_tf_variable(m).handle,
        v=_tf_variable(v).handle,
        beta1_power=beta_1_power,
        beta2_power=beta_2_power,
        lr=learning_rate,
        beta1=beta_1,
        beta2=beta_2,
        epsilon=epsilon,
        grad=gradient,
        use_locking=False,
    )


def _sparse_adam_update(
    gradient, variable, m, v, beta_1, beta_2, beta_1_power, beta_2_power, learning_rate, epsilon
):
    # The rows with a non-zero gradient; a row that is looked up but gets an
    # exactly zero gradient (a masked padding token) is left alone too.
    if isinstance(gradient, tf.IndexedSlices):
        rows, positions = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.size(rows))
    else:
        rows = tf.range(tf.shape(gradient)[0])
        values = gradient
    row_axes = list(range(1, len(values.shape)))
    nonzero = tf.reduce_any(tf.not_equal(values, 0), axis=row_axes)
    rows = tf.boolean_mask(rows, nonzero)
    values = tf.boolean_mask(values, nonzero)
    m, v = _tf_variable(m), _tf_variable(v)
    m_rows = tf.gather(m, rows) + (values - tf.gather(m, rows)) * (1 - beta_1)
    v_rows = tf.gather(v, rows) + (tf.square(values) - tf.gather(v, rows)) * (1 - beta_2)
    alpha = learning_rate * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    m.scatter_update(tf.IndexedSlices(m_rows, rows))
    v.scatter_update(tf.IndexedSlices(v_rows, rows))
    variable.scatter_sub(tf.IndexedSlices(m_rows * alpha / (tf.sqrt(v_rows) + epsilon), rows))
