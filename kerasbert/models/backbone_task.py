"""What every kerasbert model on a BERT backbone shares: a keras-hub `Task`."""

import os

import keras
import numpy as np
import keras_hub
import tensorflow as tf

from kerasbert.backbones import load_backbone
from kerasbert.text.raw_texts import checked_texts
from kerasbert.utils import arguments
from kerasbert.utils.console import is_interactive
from kerasbert.utils.files import read_json

TASK_CONFIG_FILE = "task.json"


class BackboneTask:
    """What a keras-hub `Task` around a `BertBackbone` adds in kerasbert.

    A mixin, listed before the keras-hub task class it extends
    (`class MaskedLMPretrainer(BackboneTask, keras_hub.models.Task)`): Keras
    rewires a functional model's base classes, which a second path to
    `Task` through a common base would turn into a cycle.

    Like keras-hub's own tasks, subclasses build a functional graph in
    `__init__` and rebuild from their constructor arguments
    (`get_config`/`from_config`), so `.keras` files and presets
    (`save_to_preset`/`from_preset`) restore them. On top of `Task`:

    - Raw strings, lists, NumPy arrays and `tf.data` datasets of strings go
      through `preprocessor` in `fit`, `evaluate` and `predict`; inputs that
      are already token dicts pass through untouched, so one model serves
      both.
    - Freezing never touches the backbone it was given: `freeze_backbone`
      and the backbone layers a head does not read (`unused_backbone_layers`,
      e.g. `pooled_dense`, which would get no gradient) are left out of this
      model's trainable variables, while the backbone's own `trainable`
      flags stay as they were. Two models on one backbone can then be
      trained differently.
    """

    backbone_cls = keras_hub.models.BertBackbone

    def __init__(self, *args, freeze_backbone=False, **kwargs):
        self.freeze_backbone = freeze_backbone
        super().__init__(*args, **kwargs)
        # keras-hub gives the task the backbone's policy; under a mixed one
        # the whole-model autocast scope leaves keras-hub's `MaskedLMHead`
        # adding a float32 bias to bfloat16 logits. Every layer carries its
        # own policy, so the model keeps the global one, as a plain Keras
        # model does.
        self.dtype_policy = keras.config.dtype_policy()

    # === Which variables train ===

    def unused_backbone_layers(self):
        """Backbone layers whose output this model does not read."""
        return ("pooled_dense",)

    def _frozen_variable_ids(self):
        if self.freeze_backbone:
            return {id(v) for v in self.backbone.variables}
        frozen = set()
        for name in self.unused_backbone_layers():
            frozen.update(id(v) for v in self.backbone.get_layer(name).variables)
        return frozen

    @property
    def trainable_variables(self):
        frozen = self._frozen_variable_ids()
        return [v for v in super().trainable_variables if id(v) not in frozen]

    @property
    def trainable_weights(self):
        return self.trainable_variables

    @property
    def non_trainable_variables(self):
        trainable = {id(v) for v in self.trainable_variables}
        return [v for v in self.variables if id(v) not in trainable]

    @property
    def non_trainable_weights(self):
        trainable = {id(v) for v in self.trainable_variables}
        return [v for v in self.weights if id(v) not in trainable]

    # === Preprocessing ===

    def preprocess_samples(self, x, y=None, sample_weight=None):
        if self.preprocessor is None or not _is_text(x):
            return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)
        return super().preprocess_samples(x, y, sample_weight)

    def fit(self, x=None, y=None, batch_size=None, sample_weight=None, shuffle=True,
            validation_split=None, **kwargs):
        # keras-hub batches in-memory inputs in their given order every
        # epoch; reshuffle them each epoch, as Keras does for arrays.
        _check_in_memory_inputs(self, x, y)
        if shuffle and not validation_split and x is not None and not _is_dataset(x):
            if _is_text(x):
                x = np.asarray(x, dtype=object)
            examples = keras.utils.pack_x_y_sample_weight(x, y, sample_weight)
            dataset = tf.data.Dataset.from_tensor_slices(examples)
            size = int(dataset.cardinality())
            if size == 0:
                raise ValueError("`fit` was given no examples.")
            x = dataset.shuffle(size, reshuffle_each_iteration=True).batch(batch_size or 32)
            y = batch_size = sample_weight = None
            shuffle = False  # done above: Keras would warn that it ignores it
        kwargs["verbose"] = _log_friendly(kwargs.get("verbose", "auto"))
        return super().fit(x=x, y=y, batch_size=batch_size, sample_weight=sample_weight,
                           shuffle=shuffle, validation_split=validation_split, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        _check_in_memory_inputs(self, x, y)
        if not args:
            kwargs["verbose"] = _log_friendly(kwargs.get("verbose", "auto"))
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        if isinstance(x, (list, tuple, np.ndarray)) and len(x) == 0:
            raise ValueError("`predict` was given no texts (an empty list).")
        _check_texts(x)
        if not args:
            kwargs["verbose"] = _log_friendly(kwargs.get("verbose", "auto"))
        return super().predict(x, *args, **kwargs)

    # keras-hub converts `y` to one tensor here; token inputs with a dict of
    # labels (multi-task batches) go straight to Keras.
    def train_on_batch(self, x, y=None, sample_weight=None, **kwargs):
        if self.preprocessor is None or not _is_text(x):
            if hasattr(self, "label_ids"):
                y = self.label_ids(y)
            return keras.Model.train_on_batch(self, x, y, sample_weight, **kwargs)
        return super().train_on_batch(x, y, sample_weight, **kwargs)

    def test_on_batch(self, x, y=None, sample_weight=None, **kwargs):
        if self.preprocessor is None or not _is_text(x):
            return keras.Model.test_on_batch(self, x, y, sample_weight, **kwargs)
        return super().test_on_batch(x, y, sample_weight, **kwargs)

    # === Config ===

    def get_config(self):
        return {
            **super().get_config(),
            "trainable": self.trainable,
            "freeze_backbone": self.freeze_backbone,
        }

    @classmethod
    def from_config(cls, config):
        return super().from_config(dict(config))

    def compile_from_config(self, config):
        # Keras' documented hook for models whose `compile` is overridden (as
        # every keras-hub task's is): without it a loaded `.keras` model
        # keeps the defaults its constructor compiled with and drops the
        # saved optimizer state.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # === Presets ===

    def _not_task_weights(self):
        # The backbone's are saved apart; optimizer state is no part of a
        # preset (keras-hub would save it, and warn when loading into a
        # freshly compiled model).
        skipped = list(self.backbone._flatten_layers())
        if self.optimizer is not None:
            skipped.append(self.optimizer)
        return skipped

    def save_task_weights(self, filepath):
        keras.saving.save_weights(self, filepath, objects_to_skip=self._not_task_weights())

    def load_task_weights(self, filepath):
        keras.saving.load_weights(self, filepath, objects_to_skip=self._not_task_weights())

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Build the model from a backbone spec, or restore a saved one.

        `preset` is either a directory written by `save_to_preset` (the whole
        model comes back: backbone, head weights, preprocessor and, for
        classifiers, label names), or any backbone spec that
        `kerasbert.load_backbone` accepts (`"minilm"`, `"tiny"`, a keras-hub
        preset directory or name, a HuggingFace checkpoint directory,
        `hf://…`); the model is then built on that backbone with `kwargs`,
        and preprocessor arguments among them (`sequence_length`,
        `truncation`, …) configure the preprocessor made from its tokenizer.

        Args:
            preset: str. A saved model directory or a backbone spec.
            load_weights: bool. Load the saved weights of a saved model
                (a backbone spec always loads its pretrained weights).
            **kwargs: constructor arguments of the model and of its
                preprocessor; `dtype` sets the backbone's dtype policy.
        """
        if saved_task_class(preset) is not None:
            return cls._from_saved_task(preset, load_weights, **kwargs)
        preprocessor_kwargs = {
            name: kwargs.pop(name) for name in cls.PREPROCESSOR_ARGUMENTS if name in kwargs
        }
        backbone, tokenizer = load_backbone(preset, dtype=kwargs.pop("dtype", None))
        preprocessor = None
        if cls.preprocessor_cls is not None:
            preprocessor = cls.make_preprocessor(tokenizer, **preprocessor_kwargs)
            arguments.sequence_length_fits(preprocessor.sequence_length, backbone)
        elif preprocessor_kwargs:
            raise ValueError(
                f"{cls.__name__} has no preprocessor; unexpected arguments: "
                f"{sorted(preprocessor_kwargs)}"
            )
        return cls(backbone, preprocessor=preprocessor, **kwargs)

    # Constructor arguments of the preprocessor that `from_preset` accepts.
    PREPROCESSOR_ARGUMENTS = ()

    @classmethod
    def make_preprocessor(cls, tokenizer, **kwargs):
        return cls.preprocessor_cls(tokenizer, **kwargs)

    @classmethod
    def _from_saved_task(cls, preset, load_weights, **kwargs):
        saved = saved_task_class(preset)
        if not issubclass(saved, cls):
            raise ValueError(
                f"{preset!r} holds a saved {saved.__name__}, not a {cls.__name__}. "
                f"Load it with kerasbert.{saved.__name__}.from_preset."
            )
        rebuilt = sorted(set(kwargs) - {"dtype"})
        if rebuilt:
            raise ValueError(
                f"{preset!r} holds a saved {saved.__name__}, which comes back as it was "
                f"saved; it takes no {', '.join(rebuilt)}. To build a new model on its "
                "backbone, load the backbone with kerasbert.load_backbone."
            )
        # keras-hub's own `from_preset` (the next one after this mixin's in
        # the saved class's MRO) restores the whole task from its task.json.
        return super(BackboneTask, saved).from_preset(
            preset, load_weights=load_weights, **kwargs
        )


def saved_task_class(preset):
    """The kerasbert class saved in a preset directory, or None for any
    other spec (a backbone-only preset, a HuggingFace checkpoint, a name)."""
    if not isinstance(preset, str) or not os.path.isfile(os.path.join(preset, TASK_CONFIG_FILE)):
        return None
    config = read_json(os.path.join(preset, TASK_CONFIG_FILE))
    try:
        cls = keras.saving.get_registered_object(config["registered_name"])
    except (KeyError, TypeError):
        return None
    # keras-hub's own task presets (e.g. BertTextClassifier) are backbone
    # presets to kerasbert: a kerasbert model is built on their backbone.
    if not (isinstance(cls, type) and issubclass(cls, BackboneTask)):
        return None
    return cls


def _log_friendly(verbose):
    """Keras' `verbose`, with `"auto"` as one line per epoch (2) when
    standard output is not a terminal or a notebook: a progress bar redrawn
    with `\\r` and ANSI codes is noise in a log file."""
    if verbose != "auto":
        return verbose
    return "auto" if is_interactive() else 2


def _is_dataset(x):
    return isinstance(x, tf.data.Dataset) or type(x).__module__.startswith("grain")


def _is_text(x):
    """Whether `x` (one input, not a dict of token ids) holds strings."""
    if isinstance(x, dict):
        return False
    if isinstance(x, (str, bytes)):
        return True
    dtype = getattr(x, "dtype", None)
    if isinstance(dtype, tf.DType):
        return dtype == tf.string
    if dtype is not None:
        return np.dtype(dtype).kind in "USO"
    return isinstance(x, (list, tuple)) and all(isinstance(t, (str, bytes)) for t in x)


def _check_texts(x):
    """Refuse, in one line, a list of texts holding something else."""
    if isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.dtype.kind in "OU"):
        try:
            checked_texts(x)
        except TypeError as error:
            raise ValueError(str(error)) from None


def _check_in_memory_inputs(model, x, y):
    """One-line errors for in-memory `fit`/`evaluate` inputs: texts that are
    not strings, as many labels as texts, every label a class."""
    if x is None or _is_dataset(x):
        return
    if isinstance(x, (list, tuple)) and any(isinstance(t, (str, bytes)) for t in x):
        _check_texts(x)
    if y is None:
        return
    if _is_text(x) and hasattr(y, "__len__") and not isinstance(y, dict) and len(x) != len(y):
        raise ValueError(f"{len(x)} texts but {len(y)} labels were given.")
    if hasattr(model, "check_labels"):
        model.check_labels(y)
