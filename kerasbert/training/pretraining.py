"""Further pre-training: masked LM (+ NSP) on a text corpus, resumable."""

import json
import os
import time

import keras
import keras_hub
import tensorflow as tf

from kerasbert.backbones import load_backbone
from kerasbert.data.corpus import pretraining_dataset
from kerasbert.models.masked_lm_pretrainer import MaskedLMPretrainer
from kerasbert.optimizers.schedules import WarmupLinearDecay
from kerasbert.text.whole_word_mask_generator import WholeWordMaskGenerator
from kerasbert.training.distribute import output_dir_for
from kerasbert.training.callbacks import read_epoch_history
from kerasbert.training.precision import check_precision
from kerasbert.training.precision import with_loss_scaling

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_STATE = "checkpoint.json"
HISTORY_FILE = "history.csv"


class StepCheckpoint(keras.callbacks.Callback):
    """Save weights and optimizer state every `every` steps, by global step.

    Files are `step-00000100.weights.h5`; `checkpoint.json` names the last
    one and is written after it, so a kill mid-save leaves the previous
    checkpoint in force. Only the newest `keep` checkpoints are kept.
    """

    def __init__(self, directory, keep=2):
        super().__init__()
        self.directory = directory
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        os.makedirs(self.directory, exist_ok=True)
        name = f"step-{step:08d}.weights.h5"
        self.model.save_weights(os.path.join(self.directory, name))
        state_path = os.path.join(self.directory, CHECKPOINT_STATE)
        with open(state_path + ".tmp", "w") as file:
            json.dump({"step": step, "weights": name}, file)
        os.replace(state_path + ".tmp", state_path)
        saved = sorted(f for f in os.listdir(self.directory) if f.startswith("step-"))
        for old in saved[: -self.keep]:
            os.remove(os.path.join(self.directory, old))


def latest_checkpoint(output_dir):
    """`(step, weights path)` of a run's last checkpoint, or `(0, None)`."""
    state_path = os.path.join(output_dir, CHECKPOINT_DIR, CHECKPOINT_STATE)
    if not os.path.exists(state_path):
        return 0, None
    with open(state_path) as file:
        state = json.load(file)
    return state["step"], os.path.join(output_dir, CHECKPOINT_DIR, state["weights"])


def masked_lm_inputs(
    tokenizer,
    sequence_length,
    nsp=False,
    mask_rate=0.15,
    max_predictions=20,
    mask_token_rate=0.8,
    random_token_rate=0.1,
    whole_word_masking=False,
    seed=None,
):
    """A `tf.data` map from text batches to `MaskedLMPretrainer` training triples.

    Tokenizes and packs `[CLS] A [SEP] (B [SEP])`, then masks with keras-hub's
    `BertMaskedLMPreprocessor`: `mask_rate` of the word pieces (never [CLS],
    [SEP] or [PAD]) are selected, at most `max_predictions` per sequence;
    of those `mask_token_rate` become [MASK], `random_token_rate` a random
    token, the rest stay. With `whole_word_masking`, kerasbert's
    `WholeWordMaskGenerator` selects whole words instead (all pieces of a
    word are masked together).

    Returns:
        A function `(text_a, text_b, is_random_next) → (x, y, sample_weight)`
        with `y = {"mlm": mask_ids[, "nsp": is_random_next]}` and matching
        sample weights (`mask_weights` for MLM).
    """
    masker = keras_hub.models.BertMaskedLMPreprocessor(
        tokenizer, sequence_length=sequence_length, mask_selection_rate=mask_rate,
        mask_selection_length=max_predictions, mask_token_rate=mask_token_rate,
        random_token_rate=random_token_rate,
    )

    if whole_word_masking:
        packer = keras_hub.layers.MultiSegmentPacker(
            start_value=tokenizer.cls_token_id, end_value=tokenizer.sep_token_id,
            pad_value=tokenizer.pad_token_id, sequence_length=sequence_length,
        )
        word_masker = WholeWordMaskGenerator(
            tokenizer.get_vocabulary(), mask_rate, max_predictions,
            tokenizer.mask_token_id,
            [tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id],
            mask_token_rate, random_token_rate, seed=seed,
        )

        def mask(texts):
            token_ids, segment_ids = packer(tuple(tokenizer(t) for t in texts))
            masked = word_masker(token_ids)
            x = {
                "token_ids": masked["token_ids"],
                "segment_ids": segment_ids,
                "padding_mask": token_ids != tokenizer.pad_token_id,
                "mask_positions": masked["mask_positions"],
            }
            return x, masked["mask_ids"], masked["mask_weights"]
    else:

        def mask(texts):
            return masker(texts if len(texts) > 1 else texts[0])

    def model_inputs(text_a, text_b, is_random_next):
        x, mask_ids, mask_weights = mask((text_a, text_b) if nsp else (text_a,))
        # int32 like `BertBackbone`'s input (a bool input breaks MirroredStrategy).
        x["padding_mask"] = tf.cast(x["padding_mask"], tf.int32)
        y, sample_weight = {"mlm": mask_ids}, {"mlm": mask_weights}
        if nsp:
            y["nsp"] = is_random_next
            sample_weight["nsp"] = tf.ones_like(is_random_next, tf.float32)
        return x, y, sample_weight

    return model_inputs


def further_pretrain(
    backbone,
    sources,
    output_dir,
    *,
    steps=100_000,
    warmup_steps=10_000,
    learning_rate=5e-5,
    batch_size=32,
    sequence_length=128,
    nsp=False,
    mask_rate=0.15,
    max_predictions=20,
    whole_word_masking=False,
    weight_decay=0.01,
    checkpoint_every=1000,
    keep_checkpoints=2,
    text_fields=("text",),
    data_dir=None,
    seed=0,
    mixed_precision=None,
    jit_compile=False,
    strategy=None,
    callbacks=None,
    verbose=1,
):
    """Further pre-train a BERT backbone with masked LM (and NSP), resumably.

    Defaults are the paper's (§5.2): batch 32, length 128, lr 5e-5 with 10k
    warmup steps then linear decay, 100k steps, 15 % of word pieces selected
    (at most 20 per sequence), of which 80 % become [MASK], 10 % a random
    token and 10 % stay; [CLS], [SEP] and [PAD] are never selected
    (keras-hub's `BertMaskedLMPreprocessor`). AdamW with weight decay off
    LayerNorm and bias.

    Every `checkpoint_every` steps the weights and optimizer state are saved
    under `output_dir/checkpoints`. Called again with the same `output_dir`,
    a killed run restores the last checkpoint and skips the batches it had
    already consumed (the corpus stream is deterministic for a seed), so no
    step is repeated or skipped.

    At the end `output_dir/backbone` holds the further-pretrained encoder
    and its tokenizer as a keras-hub preset directory, which
    `kerasbert.load_backbone` and `recipes/finetune.py --backbone` accept;
    `metrics.json` holds the settings and the loss and MLM accuracy at each
    checkpoint (also in `history.csv` and TensorBoard `logs/`).

    Args:
        backbone: str. A spec for `kerasbert.load_backbone`.
        sources: list of `(spec, weight)`; see `pretraining_dataset`.
        output_dir: str. Where checkpoints, logs and the backbone go.
        steps: int. Training steps; a multiple of `checkpoint_every`.
        warmup_steps: int. Linear warmup steps.
        learning_rate: float. Peak learning rate.
        batch_size: int. Sequences per step.
        sequence_length: int. Word pieces per sequence.
        nsp: bool. Add next-sentence prediction (sentence pairs, 50 % random).
        mask_rate: float. Fraction of word pieces selected for prediction.
        max_predictions: int. Most predictions per sequence.
        whole_word_masking: bool. Mask whole words (see
            `WholeWordMaskGenerator`) instead of single word pieces.
        weight_decay: float. AdamW's decoupled weight decay.
        checkpoint_every: int. Steps between checkpoints (and log rows).
        keep_checkpoints: int. How many recent checkpoints to keep.
        text_fields: sequence of str. Text fields of JSONL/CSV/TSV sources.
        data_dir: str or None. TFDS data directory.
        seed: int. Seeds the model's new weights, masking and the corpus.
        mixed_precision: str or None. `"mixed_bfloat16"` or `"mixed_float16"`
            (with dynamic loss scaling) computes the encoder and heads in 16
            bits with float32 weights; `backbone/` holds the float32 weights,
            which `load_backbone` reads in float32 unless told otherwise.
        jit_compile: bool. Compile the train step with XLA (every batch has
            the same shape here, so it compiles once).
        strategy: `tf.distribute.Strategy` or None; see `fine_tune`.
        callbacks: list of Keras callbacks or None, run after the built-in ones.
        verbose: int. Keras `fit` verbosity.

    Returns:
        The dict written to `metrics.json`.
    """
    settings = {k: v for k, v in locals().items() if k not in ("callbacks", "strategy")}
    if steps % checkpoint_every:
        raise ValueError(
            f"`steps` ({steps}) must be a multiple of `checkpoint_every` ({checkpoint_every})."
        )
    check_precision(mixed_precision)
    if not 0 <= warmup_steps < steps:
        raise ValueError(f"`warmup_steps` must be in [0, steps). Received: {warmup_steps}")
    strategy = strategy or tf.distribute.get_strategy()
    output_dir = output_dir_for(strategy, output_dir)
    os.makedirs(output_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        backbone_model, tokenizer = load_backbone(backbone, dtype=mixed_precision)
        model = MaskedLMPretrainer(backbone_model, nsp=nsp)
        schedule = WarmupLinearDecay(learning_rate, steps, warmup_steps / steps)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=weight_decay, epsilon=1e-6)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        optimizer = with_loss_scaling(optimizer, mixed_precision)
        model.compile(optimizer=optimizer, jit_compile=jit_compile)
    model_inputs = masked_lm_inputs(
        tokenizer, sequence_length, nsp=nsp, mask_rate=mask_rate,
        max_predictions=max_predictions, whole_word_masking=whole_word_masking,
    )

    start_step, weights_path = latest_checkpoint(output_dir)
    history_path = os.path.join(output_dir, HISTORY_FILE)
    if weights_path:
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
        model.load_weights(weights_path)
    elif os.path.exists(history_path):
        os.remove(history_path)  # the log of an earlier, finished run
    corpus = pretraining_dataset(
        sources, tokenizer, sequence_length, nsp=nsp, text_fields=text_fields,
        data_dir=data_dir, seed=seed,
    )
    batches = corpus.batch(batch_size, drop_remainder=True).skip(start_step)
    batches = batches.map(model_inputs, num_parallel_calls=tf.data.AUTOTUNE)

    started = time.time()
    if start_step < steps:
        model.fit(
            batches.prefetch(tf.data.AUTOTUNE),
            initial_epoch=start_step // checkpoint_every,
            epochs=steps // checkpoint_every,
            steps_per_epoch=checkpoint_every,
            shuffle=False,  # the corpus stream is already mixed and seeded
            callbacks=[
                keras.callbacks.CSVLogger(history_path, append=True),
                StepCheckpoint(os.path.join(output_dir, CHECKPOINT_DIR), keep_checkpoints),
                keras.callbacks.TensorBoard(os.path.join(output_dir, "logs")),
                *(callbacks or []),
            ],
            verbose=verbose,
        )
    history = read_epoch_history(output_dir)
    for row in history:
        row["step"] = row.pop("epoch") * checkpoint_every
    backbone_dir = os.path.join(output_dir, "backbone")
    backbone_model.save_to_preset(backbone_dir)
    tokenizer.save_to_preset(backbone_dir)
    metrics = {
        "settings": settings,
        "resumed_from_step": start_step,
        "final_step": int(model.optimizer.iterations.numpy()),
        "history": history,
        "seconds_this_run": time.time() - started,
    }
    with open(os.path.join(output_dir, "metrics.json"), "w") as file:
        json.dump(metrics, file, indent=2, default=str)
    return metrics
