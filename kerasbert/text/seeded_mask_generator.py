"""Masked-LM selection drawn from a seed per batch, in-graph."""

import keras
import tensorflow as tf
import tensorflow_text as tf_text


@keras.saving.register_keras_serializable(package="kerasbert")
class SeededMaskGenerator(keras.layers.Layer):
    """keras-hub's `MaskedLMMaskGenerator`, drawn from a seed given per call.

    keras-hub's generator runs `tf_text.mask_language_model` with selectors
    built on unseeded stateful random ops: which word pieces get masked
    differs between two processes, so a resumed pre-training run cannot
    match an uninterrupted one. This layer runs the same tf_text function
    through its public extension points (`RandomItemSelector`'s `shuffle_fn`
    and a `MaskValuesChooser` subclass) with stateless draws: the same
    `seed` masks the same pieces, in any process, in any order of batches.

    Selection as in keras-hub: `ceil(mask_selection_rate · n)` of a row's n
    selectable pieces, at most `mask_selection_length`, uniformly at random;
    of those `mask_token_rate` become `[MASK]`, `random_token_rate` a random
    id, the rest stay.

    Args:
        vocabulary_size: int. Random replacements are drawn from `[0, vocabulary_size)`.
        mask_selection_rate: float. Share of a row's selectable pieces selected.
        mask_selection_length: int. Most masked pieces per row.
        mask_token_id: int. The id of `[MASK]`.
        unselectable_token_ids: list of int. Never selected (e.g. [CLS], [SEP], [PAD]).
        mask_token_rate: float. Share of selected pieces replaced by `[MASK]`.
        random_token_rate: float. Share of selected pieces replaced randomly.

    Call arguments:
        token_ids: int tensor of shape `(batch, length)`, packed inputs.
        seed: int tensor of shape `(2,)`, the stateless seed of this batch.

    Returns:
        A dict with `token_ids` (masked), `mask_positions`, `mask_ids` and
        `mask_weights`, the last three of shape `(batch, mask_selection_length)`.

    Examples:
    ```python
    _, tokenizer = kerasbert.load_backbone("tiny")
    masker = kerasbert.text.SeededMaskGenerator(
        tokenizer.vocabulary_size(), mask_selection_rate=0.5, mask_selection_length=8,
        mask_token_id=tokenizer.token_to_id("[MASK]"), unselectable_token_ids=[0, 2, 3],
    )
    token_ids = tf.ragged.constant(tokenizer(["who was galileo ?"])).to_tensor()
    masker(token_ids, seed=tf.constant([0, 7]))["mask_positions"]  # the same for seed [0, 7]
    ```
    """

    def __init__(
        self,
        vocabulary_size,
        mask_selection_rate,
        mask_selection_length,
        mask_token_id,
        unselectable_token_ids=(),
        mask_token_rate=0.8,
        random_token_rate=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mask_token_rate + random_token_rate > 1:
            raise ValueError(
                "`mask_token_rate + random_token_rate` must be at most 1. Received: "
                f"{mask_token_rate} + {random_token_rate}"
            )
        if not (isinstance(mask_selection_length, int) and mask_selection_length > 0):
            raise ValueError("`mask_selection_length` must be a positive integer. Received: "
                             f"{mask_selection_length!r}")
        if not 0 <= mask_token_id < vocabulary_size:
            raise ValueError(f"`mask_token_id` must be in [0, {vocabulary_size}) (the "
                             f"vocabulary). Received: {mask_token_id}")
        self.vocabulary_size = vocabulary_size
        self.mask_selection_rate = mask_selection_rate
        self.mask_selection_length = mask_selection_length
        self.mask_token_id = mask_token_id
        self.unselectable_token_ids = list(unselectable_token_ids)
        self.mask_token_rate = mask_token_rate
        self.random_token_rate = random_token_rate

    def call(self, token_ids, seed):
        token_ids = tf.convert_to_tensor(token_ids)
        selection_seed, value_seed = tf.unstack(
            tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2))
        # A random priority per piece; the selector shuffles a row's
        # positions (flat indices, distinct across rows) by it.
        priority = tf.random.stateless_uniform([tf.size(token_ids)], selection_seed)
        selector = tf_text.RandomItemSelector(
            max_selections_per_batch=self.mask_selection_length,
            selection_rate=self.mask_selection_rate,
            unselectable_ids=self.unselectable_token_ids,
            shuffle_fn=lambda positions: tf.gather(
                positions, tf.argsort(tf.gather(priority, positions))),
        )
        masked, positions, mask_ids = tf_text.mask_language_model(
            tf.RaggedTensor.from_tensor(token_ids), selector,
            _SeededMaskValuesChooser(self, value_seed))
        return self._outputs(masked.to_tensor(shape=tf.shape(token_ids)),
                             tf.cast(positions, token_ids.dtype), mask_ids)

    def _replace(self, token_ids, draw, random_ids):
        """`[MASK]` where `draw < mask_token_rate`, `random_ids` where it falls in
        the next `random_token_rate`, `token_ids` elsewhere."""
        return tf.where(
            draw < self.mask_token_rate, tf.cast(self.mask_token_id, token_ids.dtype),
            tf.where(draw < self.mask_token_rate + self.random_token_rate, random_ids, token_ids))

    def _outputs(self, masked, mask_positions, mask_ids):
        """The masked ids and the ragged selections padded to the budget."""
        budget = [None, self.mask_selection_length]
        return {
            "token_ids": masked,
            "mask_positions": mask_positions.to_tensor(shape=budget),
            "mask_ids": mask_ids.to_tensor(shape=budget),
            "mask_weights": tf.ones_like(mask_ids, tf.float32).to_tensor(shape=budget),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "mask_selection_rate": self.mask_selection_rate,
                "mask_selection_length": self.mask_selection_length,
                "mask_token_id": self.mask_token_id,
                "unselectable_token_ids": self.unselectable_token_ids,
                "mask_token_rate": self.mask_token_rate,
                "random_token_rate": self.random_token_rate,
            }
        )
        return config


class _SeededMaskValuesChooser(tf_text.MaskValuesChooser):
    """tf_text's `[MASK]` / random id / keep choice, drawn from a stateless seed
    by `generator`'s rule."""

    def __init__(self, generator, seed):
        super().__init__(generator.vocabulary_size, generator.mask_token_id,
                         generator.mask_token_rate, generator.random_token_rate)
        self._generator = generator
        self._seed = seed

    def get_mask_values(self, masked_lm_ids):
        ids = masked_lm_ids.flat_values
        draw_seed, id_seed = tf.unstack(tf.random.experimental.stateless_split(self._seed, 2))
        draw = tf.random.stateless_uniform(tf.shape(ids), draw_seed)
        random_ids = tf.random.stateless_uniform(
            tf.shape(ids), id_seed, maxval=self.vocab_size, dtype=ids.dtype)
        return masked_lm_ids.with_flat_values(self._generator._replace(ids, draw, random_ids))
