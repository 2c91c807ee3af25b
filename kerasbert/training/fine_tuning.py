"""Fine-tuning: train a classifier, keep the best epoch, test, export."""

import math
import time

import keras
import numpy as np
from absl import logging

from kerasbert.data.batching import make_batches
from kerasbert.data.batching import worker_share
from kerasbert.data.datasets import LabeledTexts
from kerasbert.data.datasets import read_labeled_texts
from kerasbert.export import export_serving
from kerasbert.int8 import Int8Classifier
from kerasbert.int8 import check_runtime
from kerasbert.int8 import export_int8
from kerasbert.models.backbone_classifier import BackboneClassifier
from kerasbert.models.build_classifier import build_classifier
from kerasbert.models.feature_bilstm_classifier import FeatureBiLSTMClassifier
from kerasbert.models.layer_selected_classifier import LayerSelectedClassifier
from kerasbert.models.segment_pooling_classifier import SegmentPoolingClassifier
from kerasbert.optimizers.paper_optimizer import build_optimizer
from kerasbert.text.classifier_preprocessor import ClassifierPreprocessor
from kerasbert.text.vocabulary_coverage import texts_without_word_pieces
from kerasbert.text.vocabulary_coverage import unknown_piece_rate
from kerasbert.training.configs import MODEL_FIELDS
from kerasbert.training.configs import FineTuneConfig
from kerasbert.training.driver import run_experiment
from kerasbert.training.experiment import Experiment
from kerasbert.training.fingerprint import array_identity
from kerasbert.training.fingerprint import labeled_texts_identity
from kerasbert.training.fingerprint import path_identity
from kerasbert.utils import arguments
from kerasbert.models.load_classifier import load_classifier
from kerasbert.utils.run_layout import RUN_PRESET_DIR

# Above this share of [UNK] word pieces the vocabulary does not fit the text.
UNKNOWN_RATE_WARNING = 0.05


def fine_tune(config=None, train=None, output_dir=None, *, validation=None, test=None,
              head_weights=None, strategy=None, callbacks=None, **settings):
    """Fine-tune a BERT classifier with the paper's protocol.

    Adam (β1 0.9, β2 0.999) with linear warmup then linear decay; batches
    padded to their longest member after length bucketing; after training,
    the epoch with the best validation accuracy is restored and tested.

    Settings come as a `FineTuneConfig` or as its fields by keyword (see
    `kerasbert.training.configs` for each one's default and meaning): both
    `fine_tune(config, output_dir=...)` and
    `fine_tune("minilm", train, output_dir, learning_rate=1e-4)` work. Data
    given as `LabeledTexts` is used as given; otherwise the config's `train`,
    `validation` and `test` paths are read (with its subset and carving
    settings), as the recipe does.

    `output_dir` is a run directory (`kerasbert.training.run_directory`):
    locked while the run is alive, fingerprinted in `run.json` by the
    settings that change the result and a hash of the examples, and
    finished stage by stage. Called again with the same settings, a killed
    run resumes from its last step checkpoint and ends with the weights and
    metrics of an uninterrupted run; a finished run returns its metrics at
    once; other settings are refused unless `overwrite`.

    `output_dir` receives `run.json`, `metrics.json` (the settings, per-epoch
    metrics, the best epoch, validation and test accuracy and error, which
    test examples it got right (`test.per_example_correct`, a '1' or '0' per
    example in order), and the share of training word pieces that are
    [UNK], logged as a warning above 5 %), `history.csv`, TensorBoard
    `logs/`, `checkpoints/`, `preset/` (the whole fine-tuned classifier:
    encoder, head, preprocessor and label names, which
    `kerasbert.load_classifier(output_dir)` loads back), and, with `export`,
    a raw-text SavedModel in `saved_model/`.

    An epoch is `ceil(len(train) / batch_size)` steps drawn from an endlessly
    reshuffled stream of the training set: bucketing makes the number of
    batches of one pass vary a little, and a fixed epoch length keeps the
    schedule's length exact and gives every step a fixed input position.

    Args:
        config: a `FineTuneConfig`; or str, the backbone spec (a keras-hub
            preset, a directory, `hf://…`, `"tiny"`); or an already-built
            kerasbert classifier with a `ClassifierPreprocessor`, of which
            a copy made in the strategy's scope is trained (it brings its
            own model settings, so the text and classifier settings and
            `mixed_precision` stay at their defaults).
        train: `kerasbert.LabeledTexts` or None (then `config.train` is read).
        output_dir: str. Where everything is written.
        validation: `LabeledTexts` or None. Picks the best epoch; without it
            the last epoch is kept.
        test: `LabeledTexts` or None. Evaluated once at the end.
        head_weights: list of arrays or None. Initial `[kernel, bias]` of the
            softmax layer (e.g. a multi-task head), instead of random ones.
        strategy: `tf.distribute.Strategy` or None (the one
            `config.strategy` names). Under multi-worker training only the
            chief writes into `output_dir`.
        callbacks: list of Keras callbacks or None. Their epoch and batch
            hooks run after the loop's own logging and checkpointing.
        **settings: fields of `FineTuneConfig`, applied over `config`.

    Returns:
        The dict written to `metrics.json`.

    Raises:
        ValueError: a setting out of range (named), a `sequence_length`
            beyond the backbone's positions, a training set of one class,
            a text without word pieces, other label vocabularies.
        RunDirectoryError: `output_dir` is in use, or holds other settings.
        NonFiniteLossError: the loss became NaN or infinite.

    Examples:
    ```python
    import tempfile
    import numpy as np
    data = kerasbert.LabeledTexts(["good", "bad"] * 4, np.array([1, 0] * 4), ["neg", "pos"],
                                  "example")
    metrics = kerasbert.fine_tune("tiny", data, tempfile.mkdtemp(), learning_rate=1e-3,
                                  batch_size=4, epochs=1, sequence_length=16,
                                  export=False, verbose=0)
    metrics["epochs"][0]["epoch"]  # 1
    ```
    """
    built = None
    if isinstance(config, BackboneClassifier):
        built, config = config, None
        settings["backbone"] = f"a built {type(built).__name__}"
    elif isinstance(config, str):
        settings["backbone"], config = config, None
    elif config is not None and not isinstance(config, FineTuneConfig):
        raise ValueError(
            "`fine_tune`'s first argument must be a FineTuneConfig, a backbone spec or a "
            f"built kerasbert classifier. Received: {type(config).__name__}")
    config = FineTuneConfig.resolve(config, settings, caller="fine_tune")
    if output_dir is None:
        raise ValueError("`fine_tune` needs an `output_dir`.")
    if train is None:
        if validation is not None or test is not None:
            raise ValueError("`fine_tune` got `validation`/`test` data but no `train`; pass "
                             "all as LabeledTexts, or none (the config's paths are read).")
        train, validation, test = read_classification_data(config)
    experiment = FineTuneExperiment(config, train, validation, test, classifier=built,
                                    head_weights=head_weights)
    return run_experiment(experiment, output_dir, strategy=strategy, callbacks=callbacks)


def read_classification_data(config):
    """`(train, validation, test)` as a `FineTuneConfig` names them: read,
    subset (`train_examples[_per_class]`, seeded), and validation carved
    off `train` by `validation_fraction` when `validation` is unset."""
    if config.train is None:
        raise ValueError("No training data: set `train` (--train) or pass LabeledTexts.")
    read = dict(text_fields=list(config.text_fields), label_field=config.label_field,
                data_dir=config.data_dir, empty_text=config.empty_text)
    train = read_labeled_texts(config.train, config.train_split, **read)
    if config.train_examples:
        train = train.sample(config.train_examples, seed=config.seed)
    if config.train_examples_per_class:
        train = train.sample_per_class(config.train_examples_per_class, seed=config.seed)
    read["label_names"] = train.label_names
    validation = None
    if config.validation:
        validation = read_labeled_texts(config.validation, config.validation_split, **read)
    elif config.validation_fraction > 0:
        train, validation = train.split(config.validation_fraction, seed=config.seed)
    test = read_labeled_texts(config.test, config.test_split, **read) if config.test else None
    return train, validation, test


class FineTuneExperiment(Experiment):
    """Fine-tuning as the driver runs it (see `fine_tune`).

    Args:
        config: `FineTuneConfig`.
        train, validation, test: `LabeledTexts` (the latter two or None).
        classifier: a built kerasbert classifier to train a copy of, or None
            to build one from the config.
        head_weights: initial `[kernel, bias]` of the softmax layer, or None.
    """

    def __init__(self, config, train, validation=None, test=None, *, classifier=None,
                 head_weights=None):
        self.config = config
        self.train, self.validation, self.test = train, validation, test
        self.classifier = classifier
        self.head_weights = head_weights
        if config.export_int8:
            check_runtime()
            if isinstance(classifier, FeatureBiLSTMClassifier):
                raise ValueError(
                    "`export_int8` cannot convert a FeatureBiLSTMClassifier: its LSTM has no "
                    "LiteRT builtin ops; serve it with the SavedModel (drop export_int8).")
        check_splits(train, validation, test)
        if classifier is not None:
            check_built_classifier(classifier, config, train)
        self.model = None
        self.unknown_rate = None

    def data_identity(self):
        built = self.classifier
        return {
            "train": labeled_texts_identity(self.train),
            "validation": labeled_texts_identity(self.validation),
            "test": labeled_texts_identity(self.test),
            "backbone": (array_identity(built.get_weights()) if built is not None
                         else path_identity(self.config.backbone)),
            "head_weights": array_identity(self.head_weights),
        }

    def recorded_settings(self):
        settings = self.config.to_dict()
        if self.classifier is not None:
            # The classifier's own settings replace the unused defaults.
            for name in MODEL_FIELDS:
                del settings[name]
            settings["classifier_config"] = _described_config(self.classifier)
        return settings

    def finished_stages(self):
        return (("exported",) if self.config.export else ()) + (
            ("exported_int8",) if self.config.export_int8 else ())

    def mixed_precision(self):
        if self.classifier is not None:
            return self.config.mixed_precision or _mixed_policy(self.classifier)
        return self.config.mixed_precision

    def build_model(self):
        built = self.classifier
        if built is not None:
            # Train a copy made in the strategy's scope: the caller's
            # classifier (whose weights identify the run) stays as given.
            config = built.get_config()
            config["preprocessor"] = built.preprocessor
            config["label_names"] = list(self.train.label_names)
            model = type(built).from_config(config)
            model.set_weights(built.get_weights())
        else:
            model_settings = {name: getattr(self.config, name) for name in MODEL_FIELDS}
            if isinstance(model_settings["layers"], tuple):
                model_settings["layers"] = list(model_settings["layers"])
            model = build_classifier(self.config.backbone, self.train.label_names,
                                     mixed_precision=self.config.mixed_precision,
                                     **model_settings)
        self.model = model
        return model

    def steps_per_epoch(self):
        return math.ceil(len(self.train) / self.config.batch_size)

    def build_optimizer(self, model):
        return optimizer_for(model, self.config, self.steps_per_epoch())

    def check_model(self, model):
        if self.head_weights is not None:
            model.get_layer("logits").set_weights(self.head_weights)
        preprocessor = model.preprocessor
        arguments.sequence_length_fits(preprocessor.sequence_length, model.backbone)
        arguments.training_batch_fits(
            self.config.batch_size, preprocessor.sequence_length, model.backbone,
            getattr(preprocessor, "max_segments", None) or 1, model.distribute_strategy)
        for split in (self.train, self.validation, self.test):
            check_word_pieces(preprocessor.tokenizer, split)
            check_segment_count(preprocessor, split)
        self.unknown_rate = unknown_piece_rate(preprocessor.tokenizer, self.train.texts)
        if self.unknown_rate > UNKNOWN_RATE_WARNING:
            logging.warning(
                "%.0f %% of the word pieces of the training texts are [UNK] for backbone %r: "
                "its vocabulary does not cover this text (Chinese text needs a Chinese "
                "vocabulary, e.g. the keras-hub preset bert_base_zh or a local directory in "
                "its layout).", 100 * self.unknown_rate, self.config.backbone,
            )

    def _batches(self, data, training, context=None):
        # Evaluation keeps the order; training reshuffles every pass.
        examples, size = worker_share(data.to_tf_dataset(), self.config.batch_size, context)
        return make_batches(
            examples, self.model.preprocessor, size, shuffle=training, seed=self.config.seed,
            bucket=training, pad_to_boundaries=self.config.jit_compile,
        )

    def train_stream(self, context=None):
        return self._batches(self.train, True, context).repeat()

    def validation_stream(self):
        if self.validation is None:
            return None
        return lambda: self._batches(self.validation, False)

    def monitor(self):
        return "val_accuracy" if self.validation is not None else None

    def after_training(self, run, loop, trained):
        loop.restore_best()
        directory, test, model = run.directory, self.test, self.model
        if test is not None and not directory.done("tested"):
            started = time.time()
            result = loop.evaluate(self._batches(test, False))
            # Which examples it got right: what a paired comparison of two
            # runs on this test set reads (`kerasbert.reproduction.statistics`).
            correct = loop.predicted_classes(self._batches(test, False)) == test.labels
            directory.finish("tested", {
                "accuracy": result["accuracy"], "error": 1.0 - result["accuracy"],
                "loss": result["loss"], "examples": len(test),
                "per_example_correct": "".join("1" if c else "0" for c in correct),
                "seconds": time.time() - started,
            })
        # The whole fine-tuned classifier (encoder, head, preprocessor, label
        # names): `kerasbert.load_classifier` and `<Class>.from_preset` read
        # it, and `load_backbone` reads its encoder.
        run.save_preset("saved_preset", RUN_PRESET_DIR, model)
        if self.config.export and not directory.done("exported"):
            with directory.atomic("saved_model") as path:
                export_serving(model, model.preprocessor, path, self.train.label_names)
            directory.finish("exported", files=["saved_model"])
        if self.config.export_int8 and not directory.done("exported_int8"):
            self._export_int8(run, loop)

        history = trained["history"]
        for epoch in history:
            if "val_accuracy" in epoch:
                epoch["val_error"] = 1.0 - epoch["val_accuracy"]
        metrics = {"label_names": self.train.label_names, "epochs": history,
                   "unknown_piece_rate": self.unknown_rate}
        if self.validation is not None:
            best = trained["best"]
            metrics["best_epoch"] = best["epoch"]
            metrics["validation"] = {"accuracy": best["value"], "error": 1.0 - best["value"]}
        if test is not None:
            metrics["test"] = directory.result("tested")
        if self.config.export_int8 and directory.result("exported_int8"):
            metrics["int8_test"] = directory.result("exported_int8")
        metrics["train_seconds"] = trained["train_seconds"]
        metrics["resumed_from_step"] = trained["resumed_from_step"]
        return metrics

    def _export_int8(self, run, loop):
        directory, test, model = run.directory, self.test, self.model
        if not directory.chief:
            # No collective in conversion or LiteRT: the chief's files count.
            directory.finish("exported_int8")
            return
        if keras.dtype_policies.get(model.backbone.dtype_policy).compute_dtype != "float32":
            # Quantize the float32 weights, not a 16-bit computation.
            model = load_classifier(directory.file(RUN_PRESET_DIR), dtype="float32")
        result = {}
        with directory.atomic(INT8_DIR) as path:
            export_int8(model, model.preprocessor, path, self.train.label_names)
            if test is not None:
                # int8's measured cost in accuracy, beside the trained model's on
                # the same texts.
                fp32 = loop.predicted_classes(self._batches(test, False))
                classifier = Int8Classifier(path)
                int8 = np.concatenate([classifier.logits(test.texts[i:i + 64]).argmax(-1)
                                       for i in range(0, len(test), 64)])
                result = {"test_error": float(np.mean(int8 != test.labels)),
                          "changed_share": float(np.mean(int8 != fp32)),
                          "examples": len(test)}
        directory.finish("exported_int8", result, files=[INT8_DIR])

    def summary(self, metrics, output_dir):
        return fine_tune_summary(metrics, output_dir)


def optimizer_for(model, config, steps_per_epoch):
    """The paper's optimizer for `model` from a config's optimizer settings."""
    c = config
    return build_optimizer(
        model, c.learning_rate, c.epochs * steps_per_epoch, c.warmup_proportion, c.schedule,
        c.layer_decay, c.layer_decay_convention, c.weight_decay, c.sparse_embedding_updates,
    )


def fine_tune_summary(metrics, output_dir):
    """The lines a person reads at the end of a fine-tuning run."""
    lines = []
    if "best_epoch" in metrics:
        lines.append(f"best epoch: {metrics['best_epoch']} of {len(metrics['epochs'])} "
                     f"(validation error {100 * metrics['validation']['error']:.2f}%)")
    if "test" in metrics:
        lines.append(f"test error: {100 * metrics['test']['error']:.2f}% "
                     f"({metrics['test']['examples']} examples, "
                     f"training {metrics['train_seconds']:.0f} s)")
    if "int8_test" in metrics:
        int8 = metrics["int8_test"]
        lines.append(f"int8 test error: {100 * int8['test_error']:.2f}% "
                     f"({100 * int8['changed_share']:.1f}% of labels differ from fp32)")
    lines.append(f"outputs: {output_dir} (metrics.json, preset/"
                 + (", saved_model/" if metrics["settings"].get("export", True) else "")
                 + (", int8/" if metrics["settings"].get("export_int8") else "") + ")")
    return lines


# The int8 classifier of `export_int8` inside a run directory.
INT8_DIR = "int8"

# Most segments a document may need when `max_segments` leaves them
# unbounded: all of a batch's segments are encoded in one backbone call.
UNBOUNDED_SEGMENTS_LIMIT = 64


def check_segment_count(preprocessor, data):
    """Refuse, before training, a document that unbounded segmenting would
    cut into more than `UNBOUNDED_SEGMENTS_LIMIT` segments (counted from
    its words, a lower bound of its word pieces)."""
    if data is None or not preprocessor.segmented or preprocessor.max_segments is not None:
        return
    window = preprocessor.sequence_length - 2
    step = window - preprocessor.stride
    for index, text in enumerate(data.texts):
        words = len(text.split())
        segments = 1 + max(0, math.ceil((words - window) / step))
        if segments > UNBOUNDED_SEGMENTS_LIMIT:
            raise ValueError(
                f"{data.where(index)}: the text has {words} words, at least {segments} "
                f"segments of {preprocessor.sequence_length} word pieces, all encoded at "
                "once: pass max_segments (--max_segments, e.g. 16) to keep the first and last "
                "segments and bound memory."
            )


def check_splits(train, validation, test):
    """Raise unless the splits are `LabeledTexts` of one label vocabulary
    and the training data holds two classes or more."""
    for name, split in (("train", train), ("validation", validation), ("test", test)):
        if not isinstance(split, LabeledTexts) and not (split is None and name != "train"):
            raise ValueError(
                f"`{name}` must be a kerasbert.LabeledTexts (read_labeled_texts / "
                f"load_dataset). Received: {type(split).__name__}"
            )
    arguments.several_classes(train)
    for split in (validation, test):
        if split is not None and split.label_names != train.label_names:
            raise ValueError(
                f"{split.source} has label vocabulary {split.label_names}, but the "
                f"training data has {train.label_names}. Read it with "
                "label_names=train.label_names."
            )


def check_built_classifier(model, config, train):
    """Raise when a classifier passed to `fine_tune` cannot be trained as given."""
    defaults = FineTuneConfig()
    shaped = sorted(name for name in MODEL_FIELDS + ("mixed_precision",)
                    if getattr(config, name) != getattr(defaults, name))
    if shaped:
        raise ValueError(
            f"`fine_tune` was given a built {type(model).__name__}, which brings its own "
            f"model settings; do not also pass {', '.join(shaped)}."
        )
    if config.sparse_embedding_updates and getattr(model, "freeze_backbone", False):
        raise ValueError(
            "`sparse_embedding_updates` updates the word embeddings, which the given "
            "classifier's `freeze_backbone` keeps frozen; drop one of them.")
    if not isinstance(model, (LayerSelectedClassifier, SegmentPoolingClassifier,
                              FeatureBiLSTMClassifier)):
        raise ValueError(
            f"`fine_tune` trains a single-task classifier; received a {type(model).__name__} "
            "(use multitask_fine_tune for a MultiTaskClassifier)."
        )
    if not isinstance(model.preprocessor, ClassifierPreprocessor):
        raise ValueError(
            f"The {type(model).__name__} given to `fine_tune` has no preprocessor; build it "
            "with preprocessor=ClassifierPreprocessor(...) or with from_preset."
        )
    if model.label_names is not None and list(model.label_names) != list(train.label_names):
        raise ValueError(
            f"The classifier's label_names {model.label_names} differ from the training "
            f"data's {train.label_names}."
        )
    if model.num_classes != len(train.label_names):
        raise ValueError(
            f"The classifier has {model.num_classes} classes; the training data has "
            f"{len(train.label_names)}: {train.label_names}."
        )


def _mixed_policy(model):
    name = model.backbone.dtype_policy.name
    return name if name.startswith("mixed_") else None


def _described_config(model):
    # Everything that shapes the result except the weights (hashed apart)
    # and the vocabulary (an asset, covered by the weights' embedding table).
    config = {k: v for k, v in model.get_config().items()
              if k not in ("backbone", "preprocessor", "name", "trainable")}
    preprocessor = model.preprocessor.get_config()
    config["preprocessor"] = {k: v for k, v in preprocessor.items()
                              if k not in ("tokenizer", "name")}
    config["backbone"] = {k: v for k, v in model.backbone.get_config().items()
                          if k not in ("name", "dtype")}
    config["dtype_policy"] = model.backbone.dtype_policy.name
    return config


def check_word_pieces(tokenizer, data):
    """Raise when a text of `data` tokenizes to nothing (an empty text in
    disguise), unless it was read with `empty_text="keep"`."""
    if data is None or data.empty_text == "keep":
        return
    empty = texts_without_word_pieces(tokenizer, data.texts)
    if empty:
        raise ValueError(
            f"{data.where(empty[0])}: the text {data.texts[empty[0]][:40]!r} yields no word "
            f"pieces ({len(empty)} such texts in {data.source}); it would be classified from "
            "[CLS] [SEP] alone. Fix or drop it, or read the data with empty_text='keep'."
        )
