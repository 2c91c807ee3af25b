"""Further pre-training: masked LM (+ NSP) on a text corpus, resumable."""

import os

import keras_hub
import tensorflow as tf

from kerasbert.backbones import load_backbone
from kerasbert.data.corpus import check_source
from kerasbert.data.corpus import pretraining_dataset
from kerasbert.models.masked_lm_pretrainer import MaskedLMPretrainer
from kerasbert.optimizers.fused_adam import FusedAdam
from kerasbert.optimizers.schedules import WarmupLinearDecay
from kerasbert.text.whole_word_mask_generator import WholeWordMaskGenerator
from kerasbert.training import arguments
from kerasbert.training.fingerprint import path_identity
from kerasbert.training.precision import check_precision
from kerasbert.training.run_directory import atomic_path
from kerasbert.training.training_run import TrainingRun

# Settings that do not change the result: a rerun may change them freely.
RESULT_NEUTRAL = ("output_dir", "backbone", "sources", "keep_checkpoints", "overwrite", "verbose")

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
    backbone_snapshots=False,
    text_fields=("text",),
    data_dir=None,
    seed=0,
    mixed_precision=None,
    jit_compile=False,
    strategy=None,
    per_worker_input=False,
    overwrite=False,
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

    `output_dir` is a run directory (see `fine_tune`): locked, fingerprinted
    by the settings and the corpus files' paths, sizes and modification
    times. Every `checkpoint_every` steps the whole training state is saved
    under `output_dir/checkpoints`. Called again with the same arguments, a
    killed run restores the last checkpoint and fast-forwards the corpus
    stream (deterministic for a seed) to that step, so no step is repeated
    or skipped; a finished run returns its metrics.

    At the end `output_dir/backbone` holds the further-pretrained encoder
    and its tokenizer as a keras-hub preset directory, which
    `kerasbert.load_backbone` and `recipes/finetune.py --backbone` accept;
    `metrics.json` holds the settings and the loss and MLM accuracy at each
    checkpoint (also in `history.csv` and TensorBoard `logs/`). With
    `backbone_snapshots`, `output_dir/snapshots/step_<S>` holds the encoder
    as it was after S steps, for every multiple S of `checkpoint_every`, in
    the same preset layout (what the paper's Figure 3 fine-tunes).

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
        backbone_snapshots: bool. Also keep the encoder of every checkpoint
            as a preset in `snapshots/step_<S>` (a whole encoder each).
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
        per_worker_input: bool. Each worker reads every k-th document of
            each source (of k workers) before tokenizing, with per-replica
            batches: what a large corpus needs. Default: one stream split
            by the strategy.
        overwrite: bool. Clear an `output_dir` that holds another run.
        callbacks: list of Keras callbacks or None, run after the built-in ones.
        verbose: int. 0 silent, 1 progress bars, 2 a line per checkpoint.

    Returns:
        The dict written to `metrics.json`.
    """
    settings = {k: v for k, v in locals().items() if k not in ("callbacks", "strategy")}
    check_pretraining_arguments(settings)
    data = {
        "sources": [[path_identity(spec), weight] for spec, weight in sources],
        "backbone": path_identity(backbone),
    }
    with TrainingRun(output_dir, settings, data, result_neutral=RESULT_NEUTRAL,
                     strategy=strategy, seed=seed, overwrite=overwrite) as run:
        finished = run.finished_metrics()
        if finished is not None:
            return finished
        backbone_model, tokenizer = None, None

        def build_model():
            nonlocal backbone_model, tokenizer
            backbone_model, tokenizer = load_backbone(backbone, dtype=mixed_precision)
            return MaskedLMPretrainer(backbone_model, nsp=nsp)

        def build_pretraining_optimizer(model):
            schedule = WarmupLinearDecay(learning_rate, steps, warmup_steps / steps)
            optimizer = FusedAdam(schedule, weight_decay=weight_decay or None, epsilon=1e-6)
            optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
            return optimizer

        model = run.build(build_model, build_pretraining_optimizer, mixed_precision)
        arguments.sequence_length_fits(sequence_length, backbone_model)
        model_inputs = masked_lm_inputs(
            tokenizer, sequence_length, nsp=nsp, mask_rate=mask_rate,
            max_predictions=max_predictions, whole_word_masking=whole_word_masking, seed=seed,
        )

        def train_stream(context=None):
            shard, size = None, batch_size
            if context is not None:
                shard = (context.num_input_pipelines, context.input_pipeline_id)
                size = context.get_per_replica_batch_size(batch_size)
            corpus = pretraining_dataset(
                sources, tokenizer, sequence_length, nsp=nsp, text_fields=text_fields,
                data_dir=data_dir, seed=seed, shard=shard,
            )
            # The texts and their order are the same every time, so a resumed
            # run fast-forwards to the same position. Which pieces get masked
            # is not: keras-hub's MaskedLMMaskGenerator draws from unseeded
            # stateful random ops (tf_text's RandomItemSelector and
            # MaskValuesChooser), which differ between two processes.
            batches = corpus.batch(size, drop_remainder=True)
            batches = batches.map(model_inputs, num_parallel_calls=tf.data.AUTOTUNE)
            return batches.prefetch(tf.data.AUTOTUNE)

        # A finished training only restores its state.
        def snapshot(epoch):
            path = snapshot_path(output_dir, epoch * checkpoint_every)
            with atomic_path(path) as partial:
                backbone_model.save_to_preset(partial)
                tokenizer.save_to_preset(partial)

        _, trained = run.train(
            model, train_stream, steps_per_epoch=checkpoint_every,
            epoch_snapshot=snapshot if backbone_snapshots else None,
            epochs=steps // checkpoint_every, checkpoint_every_steps=checkpoint_every,
            keep_checkpoints=keep_checkpoints, jit_compile=jit_compile,
            per_worker_input=per_worker_input, callbacks=callbacks, verbose=verbose,
        )
        run.save_preset("exported", "backbone", backbone_model, tokenizer)
        return run.write_metrics({
            "resumed_from_step": trained["resumed_from_step"],
            "final_step": steps,
            "history": [{"step": row["epoch"] * checkpoint_every,
                         **{k: v for k, v in row.items() if k != "epoch"}}
                        if "epoch" in row else row  # a run trained before the harness
                        for row in trained["history"]],
            "train_seconds": trained.get("train_seconds", trained.get("seconds_this_run")),
        })


def snapshot_path(output_dir, step):
    """Where `further_pretrain(..., backbone_snapshots=True)` keeps the
    encoder after `step` steps."""
    return os.path.join(output_dir, "snapshots", f"step_{step}")


def check_pretraining_arguments(settings):
    """Raise a `ValueError` naming the first `further_pretrain` argument out of range."""
    a = settings
    for name in ("steps", "batch_size", "sequence_length", "max_predictions",
                 "checkpoint_every", "keep_checkpoints"):
        arguments.positive_int(name, a[name])
    arguments.non_negative_int("warmup_steps", a["warmup_steps"])
    if not isinstance(a["backbone_snapshots"], bool):
        raise ValueError(
            f"`backbone_snapshots` must be a bool. Received: {a['backbone_snapshots']!r}")
    if a["steps"] % a["checkpoint_every"]:
        raise ValueError(
            f"`steps` ({a['steps']}) must be a multiple of `checkpoint_every` "
            f"({a['checkpoint_every']})."
        )
    if a["warmup_steps"] >= a["steps"]:
        raise ValueError(f"`warmup_steps` must be in [0, steps). Received: {a['warmup_steps']}")
    arguments.positive_number("learning_rate", a["learning_rate"])
    arguments.in_range("mask_rate", a["mask_rate"], 0, 1, low_open=True)
    arguments.in_range("weight_decay", a["weight_decay"], 0, 1)
    check_precision(a["mixed_precision"])
    if not a["sources"]:
        raise ValueError("`sources` (--corpus) must name at least one corpus.")
    for spec, weight in a["sources"]:
        check_source(spec, weight, a["text_fields"], a["data_dir"])
