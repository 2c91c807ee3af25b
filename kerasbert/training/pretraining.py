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
from kerasbert.text.seeded_mask_generator import SeededMaskGenerator
from kerasbert.text.whole_word_mask_generator import WholeWordMaskGenerator
from kerasbert.training.configs import PretrainConfig
from kerasbert.training.driver import run_experiment
from kerasbert.training.experiment import Experiment
from kerasbert.training.fingerprint import path_identity
from kerasbert.utils import arguments
from kerasbert.utils.files import atomic_path

def masked_lm_inputs(
    tokenizer,
    sequence_length,
    nsp=False,
    mask_rate=0.15,
    max_predictions=20,
    mask_token_rate=0.8,
    random_token_rate=0.1,
    whole_word_masking=False,
    seed=0,
):
    """A `tf.data` map from text batches to `MaskedLMPretrainer` training triples.

    Tokenizes and packs `[CLS] A [SEP] (B [SEP])` (keras-hub's
    `MultiSegmentPacker`), then masks: `mask_rate` of the word pieces (never
    [CLS], [SEP] or [PAD]) are selected, at most `max_predictions` per
    sequence; of those `mask_token_rate` become [MASK], `random_token_rate`
    a random token, the rest stay (kerasbert's `SeededMaskGenerator`, what
    keras-hub's `BertMaskedLMPreprocessor` does, drawn from a seed). With
    `whole_word_masking`, `WholeWordMaskGenerator` selects whole words
    instead (all pieces of a word are masked together).

    The draws are stateless, from `(seed, batch_index)`: batch i is masked
    the same way in every process, so a resumed run masks what an
    uninterrupted one masks.

    Args:
        tokenizer: a keras-hub `BertTokenizer`.
        sequence_length: int. Packed length, [CLS] and [SEP]s included.
        nsp: bool. Pack `[CLS] A [SEP] B [SEP]` and add the NSP target.
        mask_rate, max_predictions, mask_token_rate, random_token_rate: the
            masking rule above.
        whole_word_masking: bool. Select whole words.
        seed: int. With the batch index, seeds the masks.

    Returns:
        A function `(text_a, text_b, is_random_next, batch_index) →
        (x, y, sample_weight)` with `y = {"mlm": mask_ids[, "nsp":
        is_random_next]}` and matching sample weights (`mask_weights` for
        MLM). `batch_index` is the batch's position in the stream (required:
        one index for every batch would mask them all alike).
    """
    packer = keras_hub.layers.MultiSegmentPacker(
        start_value=tokenizer.cls_token_id, end_value=tokenizer.sep_token_id,
        pad_value=tokenizer.pad_token_id, sequence_length=sequence_length,
    )
    special = [tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id]
    if whole_word_masking:
        masker = WholeWordMaskGenerator(
            tokenizer.get_vocabulary(), mask_rate, max_predictions, tokenizer.mask_token_id,
            special, mask_token_rate, random_token_rate,
        )
    else:
        masker = SeededMaskGenerator(
            tokenizer.vocabulary_size(), mask_rate, max_predictions, tokenizer.mask_token_id,
            special, mask_token_rate, random_token_rate,
        )

    def model_inputs(text_a, text_b, is_random_next, batch_index):
        texts = (text_a, text_b) if nsp else (text_a,)
        token_ids, segment_ids = packer(tuple(tokenizer(t) for t in texts))
        batch_seed = tf.stack([tf.cast(seed, tf.int64), tf.cast(batch_index, tf.int64)])
        masked = masker(token_ids, seed=batch_seed)
        x = {
            "token_ids": masked["token_ids"],
            "segment_ids": segment_ids,
            # int32 like `BertBackbone`'s input (a bool input breaks MirroredStrategy).
            "padding_mask": tf.cast(token_ids != tokenizer.pad_token_id, tf.int32),
            "mask_positions": masked["mask_positions"],
        }
        y, sample_weight = {"mlm": masked["mask_ids"]}, {"mlm": masked["mask_weights"]}
        if nsp:
            y["nsp"] = is_random_next
            sample_weight["nsp"] = tf.ones_like(is_random_next, tf.float32)
        return x, y, sample_weight

    return model_inputs


def further_pretrain(config=None, sources=None, output_dir=None, *, strategy=None,
                     callbacks=None, **settings):
    """Further pre-train a BERT backbone with masked LM (and NSP), resumably.

    Defaults are the paper's (§5.2): batch 32, length 128, lr 5e-5 with 10k
    warmup steps then linear decay, 100k steps, 15 % of word pieces selected
    (at most 20 per sequence), of which 80 % become [MASK], 10 % a random
    token and 10 % stay; [CLS], [SEP] and [PAD] are never selected
    (keras-hub's `BertMaskedLMPreprocessor`'s masking, drawn from the seed
    and the batch index). AdamW with weight decay off
    LayerNorm and bias.

    `output_dir` is a run directory (see `fine_tune`): locked, fingerprinted
    by the settings and the corpus files' paths, sizes and modification
    times. Every `checkpoint_every` steps the whole training state is saved
    under `output_dir/checkpoints`. Called again with the same arguments, a
    killed run restores the last checkpoint and fast-forwards the corpus
    stream (deterministic for a seed, masks included) to that step, so it
    ends as if never stopped; a finished run returns its metrics.

    At the end `output_dir/backbone` holds the further-pretrained encoder
    and its tokenizer as a keras-hub preset directory, which
    `kerasbert.load_backbone` and `recipes/finetune.py --backbone` accept;
    `metrics.json` holds the settings and the loss and MLM accuracy at each
    checkpoint (also in `history.csv` and TensorBoard `logs/`). With
    `backbone_snapshots`, `output_dir/snapshots/step_<S>` holds the encoder
    as it was after S steps, for every multiple S of `checkpoint_every`, in
    the same preset layout (what the paper's Figure 3 fine-tunes).

    Settings come as a `PretrainConfig` or as its fields by keyword (see
    `kerasbert.training.configs`).

    Args:
        config: a `PretrainConfig`, or str: the backbone spec.
        sources: list of `(spec, weight)`; see `pretraining_dataset`.
        output_dir: str. Where checkpoints, logs and the backbone go.
        strategy: `tf.distribute.Strategy` or None (the one
            `config.strategy` names).
        callbacks: list of Keras callbacks or None, run after the built-in ones.
        **settings: fields of `PretrainConfig`, applied over `config`.

    Returns:
        The dict written to `metrics.json`.
    """
    if isinstance(config, str):
        settings["backbone"], config = config, None
    config = PretrainConfig.resolve(config, settings, caller="further_pretrain")
    if output_dir is None:
        raise ValueError("`further_pretrain` needs an `output_dir`.")
    experiment = PretrainExperiment(config, sources, output_dir)
    return run_experiment(experiment, output_dir, strategy=strategy, callbacks=callbacks)


class PretrainExperiment(Experiment):
    """Further pre-training as the driver runs it (see `further_pretrain`).

    An epoch of the loop is `checkpoint_every` steps: a row of the history,
    a checkpoint and (with `backbone_snapshots`) an encoder snapshot.
    """

    def __init__(self, config, sources, output_dir):
        self.config = config
        if not sources:
            raise ValueError("`sources` (--corpus) must name at least one corpus.")
        self.sources = [tuple(source) for source in sources]
        for spec, weight in self.sources:
            check_source(spec, weight, list(config.text_fields), config.data_dir)
        self.output_dir = output_dir
        self.backbone = self.tokenizer = self.model_inputs = None

    def data_identity(self):
        return {
            "sources": [[path_identity(spec), weight] for spec, weight in self.sources],
            "backbone": path_identity(self.config.backbone),
        }

    def recorded_settings(self):
        return {**self.config.to_dict(), "sources": [list(s) for s in self.sources]}

    def finished_stages(self):
        return ("saved_preset",)

    def build_model(self):
        c = self.config
        self.backbone, self.tokenizer = load_backbone(c.backbone, dtype=c.mixed_precision)
        return MaskedLMPretrainer(self.backbone, nsp=c.nsp)

    def build_optimizer(self, model):
        c = self.config
        schedule = WarmupLinearDecay(c.learning_rate, c.steps, c.warmup_steps / c.steps)
        optimizer = FusedAdam(schedule, weight_decay=c.weight_decay or None, epsilon=1e-6)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer

    def check_model(self, model):
        c = self.config
        arguments.sequence_length_fits(c.sequence_length, self.backbone)
        arguments.training_batch_fits(c.batch_size, c.sequence_length, self.backbone,
                                      strategy=model.distribute_strategy)
        self.model_inputs = masked_lm_inputs(
            self.tokenizer, c.sequence_length, nsp=c.nsp, mask_rate=c.mask_rate,
            max_predictions=c.max_predictions, whole_word_masking=c.whole_word_masking,
            seed=c.seed,
        )

    def steps_per_epoch(self):
        return self.config.checkpoint_every

    def epochs(self):
        return self.config.steps // self.config.checkpoint_every

    def train_stream(self, context=None):
        c = self.config
        shard, size = None, c.batch_size
        if context is not None:
            shard = (context.num_input_pipelines, context.input_pipeline_id)
            size = context.get_per_replica_batch_size(c.batch_size)
        corpus = pretraining_dataset(
            self.sources, self.tokenizer, c.sequence_length, nsp=c.nsp,
            text_fields=list(c.text_fields), data_dir=c.data_dir, seed=c.seed, shard=shard,
        )
        # The texts, their order and (seeded by the batch index) their
        # masks are the same every time, so a resumed run fast-forwards to
        # the same position and masks as an uninterrupted one.
        pipelines, pipeline = shard or (1, 0)
        batches = corpus.batch(size, drop_remainder=True).enumerate()
        batches = batches.map(
            lambda index, batch: self.model_inputs(*batch, index * pipelines + pipeline),
            num_parallel_calls=tf.data.AUTOTUNE)
        return batches.prefetch(tf.data.AUTOTUNE)

    def _snapshot(self, epoch):
        path = snapshot_path(self.output_dir, epoch * self.config.checkpoint_every)
        with atomic_path(path) as partial:
            self.backbone.save_to_preset(partial)
            self.tokenizer.save_to_preset(partial)

    def written_entries(self):
        return ("snapshots",) if self.config.backbone_snapshots else ()

    def loop_options(self):
        c = self.config
        return {"checkpoint_every_steps": c.checkpoint_every,
                "keep_checkpoints": c.keep_checkpoints,
                "epoch_snapshot": self._snapshot if c.backbone_snapshots else None}

    def after_training(self, run, loop, trained):
        c = self.config
        run.save_preset("saved_preset", "backbone", self.backbone, self.tokenizer)
        return {
            "resumed_from_step": trained["resumed_from_step"],
            "final_step": c.steps,
            "history": [{"step": row["epoch"] * c.checkpoint_every,
                         **{k: v for k, v in row.items() if k != "epoch"}}
                        for row in trained["history"]],
            "train_seconds": trained["train_seconds"],
        }

    def summary(self, metrics, output_dir):
        return pretraining_summary(metrics, output_dir)


def pretraining_summary(metrics, output_dir):
    """The lines a person reads at the end of a pre-training run."""
    last = metrics["history"][-1] if metrics["history"] else {}
    figures = ", ".join(f"{k} {v:.4g}" for k, v in last.items()
                        if k != "step" and isinstance(v, float))
    return [f"step {metrics['final_step']}: {figures}"
            + (f" (resumed from step {metrics['resumed_from_step']})"
               if metrics["resumed_from_step"] else ""),
            f"outputs: {output_dir} (metrics.json, backbone/"
            + (", snapshots/" if metrics["settings"]["backbone_snapshots"] else "") + ")"]


def snapshot_path(output_dir, step):
    """Where `further_pretrain(..., backbone_snapshots=True)` keeps the
    encoder after `step` steps."""
    return os.path.join(output_dir, "snapshots", f"step_{step}")
