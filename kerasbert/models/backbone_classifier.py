"""What every kerasbert classifier on a BERT backbone shares."""

import keras
import numpy as np
import keras_hub
import tensorflow as tf

from kerasbert.layers import layer_selection
from kerasbert.models.backbone_task import BackboneTask
from kerasbert.text.classifier_preprocessor import ClassifierPreprocessor


class BackboneClassifier(BackboneTask, keras_hub.models.TextClassifier):
    """Base of the classifiers: a keras-hub `TextClassifier` with the
    softmax head, label names, and the paper's defaults for `compile`.

    With a `preprocessor`, `fit`, `evaluate` and `predict` take raw strings
    and batch them with dynamic padding (each batch padded to its longest
    member); with `label_names`, labels may be given as those names.
    `from_preset("minilm", num_classes=..., truncation=..., ...)` builds one
    on any backbone spec, and `save_to_preset(dir)` / `from_preset(dir)`
    carry the whole fine-tuned classifier, label names included.
    """

    preprocessor_cls = ClassifierPreprocessor
    PREPROCESSOR_ARGUMENTS = (
        "sequence_length", "truncation", "head_length", "max_segments", "stride", "padding",
    )

    @classmethod
    def make_preprocessor(cls, tokenizer, **kwargs):
        # Dynamic padding unless told otherwise: a batch padded to its
        # longest member gives the same outputs for a fraction of the cost.
        kwargs.setdefault("padding", "longest")
        return cls.preprocessor_cls(tokenizer, **kwargs)

    @staticmethod
    def check_head_arguments(num_classes, combine):
        if combine not in layer_selection.COMBINATIONS:
            raise ValueError(
                f"`combine` must be one of {layer_selection.COMBINATIONS}. "
                f"Received: combine={combine!r}"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"`num_classes` must be an integer of at least 2. Received: {num_classes!r}"
            )

    def check_one_sequence_per_text(self, preprocessor):
        """Raise unless `preprocessor` gives one sequence per text (a head
        on unsegmented inputs; `SegmentPoolingClassifier` reads segments)."""
        if preprocessor is not None and preprocessor.segmented:
            raise ValueError(
                f"`{type(self).__name__}` reads one sequence per text; for "
                '`truncation="segments"` use `SegmentPoolingClassifier`. Received: a '
                f"preprocessor with truncation={preprocessor.truncation!r}"
            )

    @staticmethod
    def resolve_num_classes(num_classes, label_names):
        """`num_classes` from the arguments, checked against `label_names`."""
        if label_names is None:
            if num_classes is None:
                raise ValueError("Give `num_classes` or `label_names`.")
            return num_classes
        if (not isinstance(label_names, (list, tuple))
                or not all(isinstance(n, str) and n.strip() for n in label_names)):
            raise ValueError(
                f"`label_names` must be a list of non-empty strings. Received: {label_names!r}"
            )
        if len(set(label_names)) != len(label_names):
            raise ValueError(f"`label_names` names a class twice: {list(label_names)}")
        if num_classes is not None and num_classes != len(label_names):
            raise ValueError(
                f"`num_classes`={num_classes} but {len(label_names)} `label_names` were "
                f"given: {list(label_names)}"
            )
        return len(label_names)

    @staticmethod
    def classification_head(num_classes, dropout, dtype):
        """Dropout, then the softmax layer's logits: p(c|h) = softmax(W·h).

        The logits layer computes in float32 whatever the backbone's policy,
        so mixed-precision training keeps the head and softmax in float32.
        """
        return (
            keras.layers.Dropout(dropout, dtype=dtype, name="output_dropout"),
            keras.layers.Dense(
                num_classes,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                dtype="float32",
                name="logits",
            ),
        )

    def compile(self, optimizer="auto", loss="auto", *, metrics="auto", **kwargs):
        """Compile with the paper's defaults unless told otherwise.

        `"auto"` means Adam at 2e-5 (Sun et al. 2019 §5.2), sparse categorical
        cross-entropy on logits, and accuracy.
        """
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(2e-5)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy("accuracy")]
        keras.Model.compile(self, optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def preprocess_samples(self, x, y=None, sample_weight=None):
        return super().preprocess_samples(x, self.label_ids(y), sample_weight)

    def check_labels(self, labels):
        """Raise a one-line `ValueError` naming the first label of in-memory
        `labels` that is not a class: a name outside `label_names`, or an
        id outside `0 … num_classes - 1`."""
        if isinstance(labels, dict) or tf.is_tensor(labels) and not tf.executing_eagerly():
            return
        values = np.asarray(labels.numpy() if tf.is_tensor(labels) else labels, dtype=object)
        if values.ndim == 2 and values.shape[-1] == self.num_classes:
            return  # one-hot or soft targets, for a loss compiled to read them
        for value in values.ravel():
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if isinstance(value, str):
                if self.label_names and value not in self.label_names:
                    raise ValueError(f"Unknown label {value!r}; the classes are "
                                     f"{list(self.label_names)}.")
            # An id: an integer, or an integral float (1.0, as pandas stores ids).
            elif (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
                  or isinstance(value, (float, np.floating)) and float(value).is_integer()):
                if not 0 <= int(value) < self.num_classes:
                    raise ValueError(f"Label id {value} is out of range; the classifier "
                                     f"has {self.num_classes} classes (ids 0 … "
                                     f"{self.num_classes - 1}).")
            else:
                raise ValueError(f"Label {value!r} is a {type(value).__name__}; labels are class "
                                 "names or integer ids.")

    def label_ids(self, labels):
        """Class ids for `labels`: ids pass through, names become their index
        in `label_names`; an unknown name fails, naming it."""
        if labels is None or isinstance(labels, dict):
            return labels  # none, or per-task labels of a multi-task model
        labels = tf.convert_to_tensor(labels)
        if labels.dtype != tf.string:
            return labels
        if not self.label_names:
            raise ValueError(
                "The labels are strings, but this classifier has no `label_names` to map "
                "them to class ids. Build it with label_names=[...] or pass integer ids."
            )
        names = tf.constant(self.label_names)
        matches = tf.equal(labels[..., tf.newaxis], names)
        known = tf.reduce_any(matches, axis=-1)
        check = tf.debugging.Assert(
            tf.reduce_all(known),
            ["Unknown label:", tf.boolean_mask(labels, ~known)[:1],
             "; label_names are", names],
            summarize=len(self.label_names),
        )
        with tf.control_dependencies([check]):
            return tf.argmax(tf.cast(matches, tf.int32), axis=-1, output_type=tf.int32)

    def get_config(self):
        return {**super().get_config(), "label_names": self.label_names}
