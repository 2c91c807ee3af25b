"""Load a fine-tuned classifier back from where `fine_tune` or
`save_to_preset` put it."""

import os

from kerasbert.backbones import check_preset_configs
from kerasbert.models.backbone_task import saved_task_class
from kerasbert.utils.run_layout import RUN_PRESET_DIR


def load_classifier(path, **kwargs):
    """A saved kerasbert model, whatever its class, ready to `predict` raw text.

    Args:
        path: str or path-like. A run directory of `fine_tune` (its `preset/` is read) or
            a directory written by `save_to_preset`.
        **kwargs: passed to the class's `from_preset` (e.g. `dtype`).

    Returns:
        The classifier, with its preprocessor and label names.

    Examples:
    ```python
    import tempfile
    classifier = kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", label_names=["no", "yes"], sequence_length=16
    )
    directory = tempfile.mkdtemp()
    classifier.save_to_preset(directory)
    kerasbert.load_classifier(directory).label_names  # ['no', 'yes']
    ```
    """
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not os.path.isdir(path):
        raise ValueError(f"No directory at {path!r} to load a classifier from.")
    if saved_task_class(os.path.join(path, RUN_PRESET_DIR)) is not None:
        path = os.path.join(path, RUN_PRESET_DIR)
    cls = saved_task_class(path)
    if cls is None:
        raise ValueError(
            f"{path!r} holds no saved kerasbert model (no task.json naming a kerasbert "
            "class): expected a fine_tune run directory or a directory written by "
            "save_to_preset."
        )
    check_preset_configs(path)
    try:
        return cls.from_preset(path, **kwargs)
    except ValueError as error:
        # keras-hub quotes a whole config.json it cannot read.
        if "\n" not in str(error):
            raise
        raise ValueError(f"{path!r}: {str(error).splitlines()[0]}") from None
