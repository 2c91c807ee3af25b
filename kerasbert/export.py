"""Export a classifier as a SavedModel that takes raw strings."""

import tensorflow as tf

from kerasbert.text import packing


class ServingModule(tf.Module):
    """Raw strings → probabilities and labels; holds the model and the
    preprocessor so that both are saved."""

    def __init__(self, model, preprocessor, label_names):
        super().__init__()
        self.model = model
        self.preprocessor = preprocessor
        self.label_names = tf.constant(list(label_names))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def serve(self, texts):
        features = packing.trim_padding(self.preprocessor(texts))
        logits = self.model(features, training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        batch_size = tf.shape(texts)[0]
        return {
            "probabilities": probabilities,
            "label": tf.gather(self.label_names, tf.argmax(probabilities, axis=-1)),
            "label_names": tf.tile(self.label_names[tf.newaxis], [batch_size, 1]),
        }


def export_serving(model, preprocessor, path, label_names):
    """Write a SavedModel whose serving signature classifies raw strings.

    The signature `serving_default` (also callable as `.serve`) takes
    `texts`, a `tf.string` tensor of shape `(batch,)`, tokenizes and packs
    them inside the graph (each batch padded to its longest text), and
    returns:
    - `probabilities`: float32 `(batch, num_classes)`, softmax over classes;
    - `label`: string `(batch,)`, the most probable label name;
    - `label_names`: string `(batch, num_classes)`, the class of each column.

    Loading needs TensorFlow and `tensorflow_text` (for the tokenizer's ops),
    not kerasbert or Keras:
    `import tensorflow_text; tf.saved_model.load(path).serve(texts)`.

    Args:
        model: a Keras model taking the preprocessor's outputs and returning
            logits, e.g. `kerasbert.LayerSelectedClassifier`.
        preprocessor: `kerasbert.ClassifierPreprocessor`.
        path: str. The output directory.
        label_names: list of str. The class names, in logit order.

    Examples:
    ```python
    import tempfile
    backbone, tokenizer = kerasbert.load_backbone("tiny")
    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)
    model = kerasbert.LayerSelectedClassifier(backbone, num_classes=2)
    path = tempfile.mkdtemp()
    kerasbert.export_serving(model, preprocessor, path, ["neg", "pos"])
    ```
    """
    output_units = model.output.shape[-1]
    if len(label_names) != output_units:
        raise ValueError(
            f"The model has {output_units} outputs but {len(label_names)} label "
            f"names were given: {list(label_names)}."
        )
    module = ServingModule(model, preprocessor, label_names)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path
