"""The settings of every kind of run, each declared once.

A run kind's config is a frozen dataclass assembled from the sections it
uses: `FineTuneConfig`, `MultiTaskConfig`, `PretrainConfig`. A section
(`OptimizerSettings`, `RuntimeSettings`, …) declares each of its fields once,
with its type, default, one-line help and whether it changes the result; the
recipes' absl flags, `metrics.json`'s `settings`, `run.json`'s fingerprint
and validation all come from these fields. A kind whose paper default
differs (pre-training's learning rate, batch size and length) re-declares
only the default (`redefault`).

Examples:
```python
from kerasbert.training.configs import FineTuneConfig
config = FineTuneConfig(learning_rate=1e-4, layers="last4")
config.batch_size, config.result_dict()["layers"]  # (24, 'last4')
```
"""

import dataclasses

from kerasbert.data.datasets import EMPTY_TEXT_HANDLING
from kerasbert.data.task_sampling import SAMPLING
from kerasbert.layers.layer_selection import COMBINATIONS
from kerasbert.layers.layer_selection import LAYER_SETS
from kerasbert.models.build_classifier import CLASSIFIERS
from kerasbert.optimizers.layerwise import CONVENTIONS
from kerasbert.optimizers.paper_optimizer import SCHEDULES
from kerasbert.text import packing
from kerasbert.training import settings as s
from kerasbert.training.distribute import DEFAULT_CLUSTER_TIMEOUT
from kerasbert.training.distribute import STRATEGIES
from kerasbert.training.precision import PRECISIONS
from kerasbert.training.settings import Settings
from kerasbert.training.settings import redefault
from kerasbert.training.settings import setting
from kerasbert.training.trainer import DEFAULT_STEPS_PER_LOOP
from kerasbert.training.training_loop import DEFAULT_CHECKPOINT_EVERY_STEPS

# Choices of the settings that no lower module names.
TRUNCATIONS = packing.TRUNCATION_STRATEGIES + ("segments",)
SEGMENT_POOLINGS = ("mean", "max", "attention")


def parse_layers(value):
    """`--layers`: first4, last4, all, an int or comma-separated ints."""
    if value in LAYER_SETS:
        return value
    try:
        indices = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise ValueError(
            "`layers` must be an int, comma-separated ints, first4, last4 or all. "
            f"Received: {value!r}") from None
    return indices[0] if len(indices) == 1 else indices


def check_layers(name, value):
    ok = (value in LAYER_SETS if isinstance(value, str) else
          (isinstance(value, int) and not isinstance(value, bool)) or
          (isinstance(value, tuple) and value and all(
              isinstance(v, int) and not isinstance(v, bool) for v in value)))
    if not ok:
        raise ValueError(
            f"`{name}` must be an int, a list of ints, or one of {LAYER_SETS}. "
            f"Received: {value!r}")


def check_sequence_length(name, value):
    s.positive_int(name, value)
    if value < 3:
        raise ValueError(
            f"`{name}` must be at least 3 ([CLS], a word piece, [SEP]). Received: {value}")


def check_text_fields(name, value):
    if (not isinstance(value, tuple) or not value
            or not all(isinstance(v, str) and v for v in value)):
        raise ValueError(f"`{name}` must name at least one field. Received: {value!r}")


# === Sections ===

@dataclasses.dataclass(frozen=True, kw_only=True)
class RunSettings(Settings):
    """What every run has: the backbone, the seed, and output handling."""

    backbone: str = setting(
        "minilm", "Backbone spec for kerasbert.load_backbone (preset, directory, hf://).",
        changes_result=False)  # the data identity holds its path and files
    seed: int = setting(0, "Random seed: new weights, dropout, shuffling, subsets.",
                        check=s.seed_value)
    overwrite: bool = setting(
        False, "Clear --output_dir first when it holds a run with other settings (without "
        "it such a run is refused; the same settings resume or finish it).",
        changes_result=False)
    verbose: int = setting(1, "0 silent, 1 progress (one line per epoch when not a "
                              "terminal), 2 one line per epoch.",
                           changes_result=False, choices=(0, 1, 2))


@dataclasses.dataclass(frozen=True, kw_only=True)
class RuntimeSettings(Settings):
    """Where and how fast the steps run: strategy, precision, XLA, loop size."""

    strategy: str = setting("default", "tf.distribute strategy; multi_worker reads TF_CONFIG.",
                            choices=STRATEGIES, changes_result=False)  # fingerprinted by replicas
    tpu: str | None = setting(None, "TPU name or grpc:// address for --strategy=tpu.",
                              changes_result=False)
    cluster_timeout: float = setting(
        DEFAULT_CLUSTER_TIMEOUT, "Under --strategy=multi_worker: seconds to wait for every "
        "worker to join before failing with the names of those that did not (the "
        "waiting process is then terminated: exit status 143).",
        check=s.positive_number, changes_result=False)
    mixed_precision: str | None = setting(
        None, "16-bit compute with float32 weights (float16 with loss scaling); classifier "
        "heads, softmax and losses stay float32. On a CPU, mixed_bfloat16 pays only with "
        "AVX512-BF16 or AMX (oneDNN bf16 kernels); on an AVX2-only CPU it ran 6.6x slower "
        "per step than float32.", choices=PRECISIONS)
    jit_compile: bool = setting(
        False, "Compile train/eval steps with XLA (fine-tuning batches are then padded to "
        "bucket boundaries).")
    per_worker_input: bool = setting(
        False, "Under --strategy=multi_worker: each worker reads its own share of the raw "
        "texts before tokenizing (large corpora), instead of one pipeline split by the "
        "strategy (which reproduces single-process batches).")
    steps_per_loop: int | None = setting(
        None, "Training steps per call of the compiled loop (metrics reach the host only "
        "between calls); results are identical for every value. Default: "
        f"{DEFAULT_STEPS_PER_LOOP['CPU']} on a CPU, {DEFAULT_STEPS_PER_LOOP['GPU']} on a GPU, "
        f"{DEFAULT_STEPS_PER_LOOP['TPU']} on a TPU.", check=s.optional_positive_int,
        changes_result=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckpointSettings(Settings):
    """How often a run saves what a kill would otherwise cost."""

    checkpoint_every_steps: int = setting(
        DEFAULT_CHECKPOINT_EVERY_STEPS, "Steps between mid-epoch checkpoints (also at every "
        "epoch end): the most work a kill can cost. A resumed run ends as if never stopped.",
        check=s.positive_int, changes_result=False)
    export: bool = setting(True, "Write the raw-text SavedModel(s) after training.",
                           changes_result=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerSettings(Settings):
    """Adam with warmup and decay, per-layer rates, weight decay."""

    learning_rate: float = setting(2e-5, "Peak learning rate.", check=s.positive_number)
    batch_size: int = setting(24, "Examples per training step (the global batch).",
                              check=s.positive_int)
    epochs: int = setting(4, "Passes over the training data.", check=s.positive_int)
    warmup_proportion: float = setting(0.1, "Fraction of steps spent warming up.",
                                       check=s.unit_interval(high_open=True))
    schedule: str = setting("warmup_linear", "Learning-rate schedule.", choices=SCHEDULES)
    layer_decay: float = setting(
        1.0, "ξ: each layer's rate is ξ times the one above (paper's best: 0.95).",
        check=s.unit_interval(low_open=True))
    layer_decay_convention: str = setting(
        "paper", "paper: embeddings continue the decay; official_code: embeddings at the base "
        "rate.", choices=CONVENTIONS)
    weight_decay: float = setting(0.0, "Decoupled weight decay (AdamW), off LayerNorm and bias.",
                                  check=s.unit_interval())
    sparse_embedding_updates: bool = setting(
        False, "Speed switch: update only the word-embedding rows each batch looks up "
        "(LazyAdam), leaving the other rows' Adam moments and values alone. Departs from the "
        "paper's Adam. Not with --jit_compile.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TextSettings(Settings):
    """How a text becomes word pieces: length and long-text handling."""

    sequence_length: int = setting(
        packing.DEFAULT_SEQUENCE_LENGTH, "Word pieces per input, [CLS] and [SEP] included.",
        check=check_sequence_length)
    truncation: str = setting(
        packing.DEFAULT_TRUNCATION,
        "Long-text handling; segments = hierarchical (see --segment_pooling).",
        choices=TRUNCATIONS)
    head_length: int = setting(
        packing.DEFAULT_HEAD_LENGTH, "Head pieces kept under --truncation=head_tail.",
        check=s.non_negative_int)
    segment_pooling: str = setting(
        "mean", "Pooling of segment [CLS] vectors under --truncation=segments.",
        choices=SEGMENT_POOLINGS)
    max_segments: int | None = setting(
        None, "Most segments per document (first ceil(m/2) + last floor(m/2) kept).",
        check=s.optional_positive_int)
    segment_stride: int = setting(0, "Word pieces shared by consecutive segments.",
                                  check=s.non_negative_int)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClassifierSettings(Settings):
    """The head on the encoder: which layers, how combined, what trains."""

    classifier: str = setting(
        "cls", "cls: softmax on [CLS]; feature_bilstm: BERT-Feat (frozen features of one "
        "layer into a BiLSTM with self-attention).", choices=CLASSIFIERS)
    layers: int | tuple | str = setting(
        -1, "Layer(s) read: an int, comma-separated ints, first4, last4 or all.",
        check=check_layers, parse=parse_layers)
    combine: str = setting("concat", "How several layers combine.", choices=COMBINATIONS)
    dropout: float = setting(0.1, "Dropout before the softmax layer.",
                             check=s.unit_interval(high_open=True))
    freeze_backbone: bool = setting(False, "Train the head only (feature-based baseline).")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReadingSettings(Settings):
    """How records are read from files, directories or TFDS. The data
    identity (a hash of the examples read) fingerprints their effect."""

    text_fields: tuple = setting(("text",), "Fields joined to form the text, e.g. title,body.",
                                 check=check_text_fields, changes_result=False)
    label_field: str = setting("label", "The label field.", changes_result=False)
    data_dir: str | None = setting(None, "TFDS data directory (no downloads happen).",
                                   changes_result=False)
    empty_text: str = setting("error", "Empty texts: reject, or keep as [CLS] [SEP].",
                              choices=EMPTY_TEXT_HANDLING, changes_result=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SubsetSettings(Settings):
    """Which part of the training data a run uses (hashed by the data identity)."""

    validation_fraction: float = setting(
        0.1, "Fraction of train carved off as validation when --validation is unset; 0 keeps "
        "the last epoch instead.", check=s.unit_interval(high_open=True), changes_result=False)
    train_examples: int | None = setting(
        None, "Use a seeded random subset of this many training examples (before carving "
        "validation).", check=s.optional_positive_int, changes_result=False)
    train_examples_per_class: int | None = setting(
        None, "Few-shot: a seeded subset of this many examples per class (before carving "
        "validation).", check=s.optional_positive_int, changes_result=False)

    def validate(self):
        super().validate()
        if self.train_examples is not None and self.train_examples_per_class is not None:
            raise ValueError("`train_examples` and `train_examples_per_class` both choose a "
                             "subset; give one of them.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataSettings(Settings):
    """Where a classification run's examples come from (recorded so that a
    run can be repeated from its record)."""

    train: str | None = setting(None, "Training data: file, directory or TFDS name.",
                                changes_result=False)
    validation: str | None = setting(
        None, "Validation data; unset carves --validation_fraction off train.",
        changes_result=False)
    test: str | None = setting(None, "Test data, evaluated with the best epoch.",
                               changes_result=False)
    train_split: str = setting("train", "Split read from a directory or TFDS for --train.",
                               changes_result=False)
    validation_split: str = setting("validation", "Split read for --validation.",
                                    changes_result=False)
    test_split: str = setting("test", "Split read for --test.", changes_result=False)


# === Run kinds ===

def _check_classifier_choices(config):
    frozen = config.freeze_backbone or config.classifier == "feature_bilstm"
    if config.sparse_embedding_updates and frozen:
        raise ValueError(
            "`sparse_embedding_updates` updates the word embeddings, which `freeze_backbone` "
            "(or the frozen feature_bilstm classifier) keeps frozen; drop one of them.")
    if config.sparse_embedding_updates and config.jit_compile:
        raise ValueError(
            "`sparse_embedding_updates` is not supported with `jit_compile` (the updated rows "
            "are a data-dependent shape; untested under XLA); drop one of them.")
    if config.classifier == "feature_bilstm":
        if config.truncation == "segments":
            raise ValueError('`classifier="feature_bilstm"` reads one sequence per text; it '
                             'does not support `truncation="segments"`.')
        if isinstance(config.layers, (str, tuple)) and not (
                isinstance(config.layers, tuple) and len(config.layers) == 1):
            raise ValueError('`classifier="feature_bilstm"` reads the states of one layer. '
                             f"Received: layers={config.layers!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServingSettings(Settings):
    """What a fine-tuning run writes for serving beside its SavedModel."""

    export_int8: bool = setting(
        False, "Also write int8/: the classifier quantized to int8 for CPU serving (LiteRT, "
        "about 2x the SavedModel's speed), scored on the test set beside fp32. Needs "
        'pip install "kerasbert[int8]".', changes_result=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class FineTuneConfig(RunSettings, RuntimeSettings, CheckpointSettings, OptimizerSettings,
                     TextSettings, ClassifierSettings, ReadingSettings, SubsetSettings,
                     DataSettings, ServingSettings):
    """Every setting of `kerasbert.fine_tune` (the paper's defaults)."""

    def validate(self):
        super().validate()
        _check_classifier_choices(self)
        if self.export_int8 and self.classifier == "feature_bilstm":
            raise ValueError(
                '`export_int8` cannot convert classifier="feature_bilstm": its LSTM has no '
                "LiteRT builtin ops; serve it with the SavedModel (drop export_int8).")


# The settings that shape the classifier `fine_tune` builds; a classifier
# passed in already built brings its own.
MODEL_FIELDS = tuple(TextSettings.field_names() + ClassifierSettings.field_names())


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultiTaskSettings(Settings):
    """The multi-task joint phase and the per-task phase after it."""

    sampling: str = setting("proportional", "Task sampling.", choices=SAMPLING)
    alpha: float = setting(0.5, "Exponent of --sampling=temperature.", check=s.positive_number)
    then_finetune: bool = setting(False, "Fine-tune each task alone afterwards.")
    finetune_epochs: int = setting(1, "Epochs of per-task fine-tuning.", check=s.positive_int)
    finetune_learning_rate: float | None = setting(
        None, "Per-task rate (default: half of --learning_rate).",
        check=s.optional_positive_number)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultiTaskConfig(RunSettings, RuntimeSettings, CheckpointSettings, OptimizerSettings,
                      TextSettings, ClassifierSettings, ReadingSettings, SubsetSettings,
                      MultiTaskSettings):
    """Every setting of `kerasbert.multitask_fine_tune`. The text settings
    are every task's defaults; a task may set its own length and
    truncation."""

    def validate(self):
        super().validate()
        _check_classifier_choices(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MaskedLMSettings(Settings):
    """Masked LM (+ NSP) pre-training: the paper's §5.2 defaults."""

    steps: int = setting(100_000, "Training steps (a multiple of --checkpoint_every).",
                         check=s.positive_int)
    warmup_steps: int = setting(10_000, "Linear warmup steps.", check=s.non_negative_int)
    nsp: bool = setting(False, "Add next-sentence prediction (the paper used MLM + NSP).")
    mask_rate: float = setting(0.15, "Fraction of word pieces selected for MLM.",
                               check=s.unit_interval(low_open=True))
    max_predictions: int = setting(20, "Most MLM predictions per sequence.",
                                   check=s.positive_int)
    whole_word_masking: bool = setting(
        False, "Mask all word pieces of a selected word together.")
    # The loop's epoch: history rows and snapshots are counted in it.
    checkpoint_every: int = setting(1000, "Steps between checkpoints (and log rows).",
                                    check=s.positive_int)
    keep_checkpoints: int = setting(2, "Recent checkpoints kept.", check=s.positive_int,
                                    changes_result=False)
    backbone_snapshots: bool = setting(
        False, "Also keep the encoder of every checkpoint as a preset in "
        "snapshots/step_<S> (what the paper's Figure 3 fine-tunes).")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PretrainConfig(RunSettings, RuntimeSettings, MaskedLMSettings):
    """Every setting of `kerasbert.further_pretrain` (the paper's §5.2)."""

    learning_rate: float = redefault(OptimizerSettings, "learning_rate", 5e-5)
    batch_size: int = redefault(OptimizerSettings, "batch_size", 32)
    weight_decay: float = redefault(OptimizerSettings, "weight_decay", 0.01)
    sequence_length: int = redefault(TextSettings, "sequence_length", 128)
    # The corpus identity is its files' paths, sizes and times, not the texts
    # read from them: which fields and which TFDS directory change the result.
    text_fields: tuple = redefault(ReadingSettings, "text_fields", ("text",),
                                   changes_result=True)
    data_dir: str | None = redefault(ReadingSettings, "data_dir", None, changes_result=True)

    def validate(self):
        super().validate()
        if self.steps % self.checkpoint_every:
            raise ValueError(f"`steps` ({self.steps}) must be a multiple of `checkpoint_every` "
                             f"({self.checkpoint_every}).")
        if self.nsp and self.sequence_length < 5:
            raise ValueError("`sequence_length` must be at least 5 with `nsp` ([CLS] A [SEP] "
                             f"B [SEP]). Received: {self.sequence_length}")
        if self.warmup_steps >= self.steps:
            raise ValueError(
                f"`warmup_steps` must be in [0, steps). Received: {self.warmup_steps}")
