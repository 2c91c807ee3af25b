"""Whole-word masking for masked-LM pre-training, in-graph."""

import keras
import tensorflow as tf

from kerasbert.text.seeded_mask_generator import SeededMaskGenerator


@keras.saving.register_keras_serializable(package="kerasbert")
class WholeWordMaskGenerator(SeededMaskGenerator):
    """Mask whole words, not single word pieces, for masked-LM training.

    A word is a word piece that does not start with `##` followed by its `##`
    continuations. Each word is selected with probability
    `mask_selection_rate`; the word pieces of selected words are masked
    together, up to `mask_selection_length` pieces per sequence (a word that
    would cross the limit is left out whole). Per selected word,
    `mask_token_rate` of the time all its pieces become `[MASK]`,
    `random_token_rate` of the time random tokens, otherwise they stay.
    `unselectable_token_ids` (e.g. [CLS], [SEP], [PAD]) are never selected.

    The outputs match keras-hub's `MaskedLMMaskGenerator` and
    `SeededMaskGenerator`, which this complements (they select single word
    pieces).

    Args:
        vocabulary: list of str. The word-piece vocabulary, in id order.
        mask_selection_rate: float. Probability of selecting a word.
        mask_selection_length: int. Most masked pieces per sequence.
        mask_token_id: int. The id of `[MASK]`.
        unselectable_token_ids: list of int. Never selected.
        mask_token_rate: float. Share of selected words replaced by `[MASK]`.
        random_token_rate: float. Share of selected words replaced randomly.
        seed: int or None. Seeds the random draws.

    Call arguments:
        token_ids: int tensor of shape `(batch, length)`, packed inputs.
        seed: optional int tensor of shape `(2,)`: draws stateless from it,
            the same in any process, instead of from the layer's `seed`.

    Returns:
        A dict with `token_ids` (masked), `mask_positions`, `mask_ids` and
        `mask_weights`, the last three of shape `(batch, mask_selection_length)`.

    Examples:
    ```python
    _, tokenizer = kerasbert.load_backbone("tiny")
    masker = kerasbert.text.WholeWordMaskGenerator(
        tokenizer.get_vocabulary(), mask_selection_rate=1.0, mask_selection_length=8,
        mask_token_id=tokenizer.token_to_id("[MASK]"), unselectable_token_ids=[0, 2, 3],
    )
    token_ids = tf.ragged.constant(tokenizer(["who was galileo ?"])).to_tensor()
    masker(token_ids)["mask_weights"]  # 1 for each piece of each word
    ```
    """

    def __init__(
        self,
        vocabulary,
        mask_selection_rate,
        mask_selection_length,
        mask_token_id,
        unselectable_token_ids=(),
        mask_token_rate=0.8,
        random_token_rate=0.1,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            len(vocabulary), mask_selection_rate, mask_selection_length, mask_token_id,
            unselectable_token_ids, mask_token_rate, random_token_rate, **kwargs,
        )
        self.vocabulary = list(vocabulary)
        self.seed = seed
        self._continuation = tf.constant([t.startswith("##") for t in self.vocabulary])

    def call(self, token_ids, seed=None):
        token_ids = tf.convert_to_tensor(token_ids)
        shape = tf.shape(token_ids)
        batch_size, length = shape[0], shape[1]
        continuation = tf.gather(self._continuation, token_ids)
        selectable = tf.reduce_all(
            tf.not_equal(token_ids[..., None], tf.constant(self.unselectable_token_ids or [-1],
                                                           token_ids.dtype)),
            axis=-1,
        )
        word_start = selectable & ~continuation
        # Word index of every piece; pieces before a row's first word get -1.
        word = tf.cumsum(tf.cast(word_start, tf.int32), axis=1) - 1
        in_word = selectable & (word >= 0)
        word = tf.maximum(word, 0)

        def per_word(draw):
            # One draw per word index, shared by all pieces of that word.
            return tf.gather(draw, word, batch_dims=1)

        if seed is None:  # stateful draws, seeded by the layer's `seed`
            def uniform(shape, index, **kwargs):
                op_seed = None if self.seed is None else self.seed + index
                return tf.random.uniform(shape, seed=op_seed, **kwargs)
        else:
            seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)

            def uniform(shape, index, **kwargs):
                return tf.random.stateless_uniform(shape, seeds[index], **kwargs)

        chosen = per_word(uniform([batch_size, length], 0)) < self.mask_selection_rate
        chosen &= in_word
        # Keep whole words within the per-sequence budget.
        over = tf.cumsum(tf.cast(chosen, tf.int32), axis=1) > self.mask_selection_length
        flat_word = word + tf.range(batch_size)[:, None] * length
        word_over = tf.math.unsorted_segment_max(
            tf.cast(over & chosen, tf.int32), flat_word, batch_size * length
        )
        chosen &= tf.equal(tf.gather(word_over, flat_word), 0)

        action = per_word(uniform([batch_size, length], 1))
        random_ids = uniform(tf.shape(token_ids), 2, maxval=self.vocabulary_size,
                             dtype=token_ids.dtype)
        masked = tf.where(chosen, self._replace(token_ids, action, random_ids), token_ids)
        positions = tf.broadcast_to(tf.range(length), shape)
        return self._outputs(masked, tf.ragged.boolean_mask(positions, chosen),
                             tf.ragged.boolean_mask(token_ids, chosen))

    def get_config(self):
        config = super().get_config()
        del config["vocabulary_size"]  # the vocabulary's length
        config.update({"vocabulary": self.vocabulary, "seed": self.seed})
        return config
