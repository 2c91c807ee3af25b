"""The harness every training entry point shares, written once."""

import os
import time

import keras
import tensorflow as tf

from kerasbert.training.distribute import is_chief
from kerasbert.training.fingerprint import strategy_name
from kerasbert.training.precision import with_loss_scaling
from kerasbert.training.run_directory import RUN_FORMAT_KEY
from kerasbert.training.run_directory import RunDirectory
from kerasbert.training.training_loop import CHECKPOINT_DIR
from kerasbert.training.training_loop import HISTORY_FILE
from kerasbert.training.training_loop import LOG_DIR
from kerasbert.training.training_loop import TrainingLoop
from kerasbert.utils.files import read_json

METRICS_FILE = "metrics.json"
# Which Adam update the run's steps take, part of every fingerprint: runs
# made with Keras' Adam (before FusedAdam, whose second moment of repeated
# embedding rows differs) are not resumed or reused by the FusedAdam code.
ADAM_UPDATE = "FusedAdam"
# 2: one config per run, stages named alike in every kind, checkpoints by
# name (format 1: settings per entry point, `.npz` checkpoints by position).
RUN_FORMAT = 2


class TrainingRun:
    """The run directory and strategy of one experiment (see `driver`).

    Owns what every kind of run shares: the strategy, the run directory
    (`RunDirectory`: lock, fingerprint of the settings that change the
    result plus the data identity, stages, chief-only writes), seeding,
    building and compiling the model in the strategy's scope with loss
    scaling for `mixed_float16`, the `TrainingLoop` and its `trained`
    stage, presets, and `metrics.json` with the recorded settings.

    Args:
        output_dir: str. The run directory.
        config: a `kerasbert.training.configs` config. Its `result_dict()`
            enters the fingerprint; `seed` and `overwrite` are read.
        data: dict. The identity of the data read (see `fingerprint`).
        settings: dict or None. What `metrics.json` records as settings
            (default: `config.to_dict()`).
        strategy: `tf.distribute.Strategy` or None.

    Examples:
    ```python
    import tempfile
    from kerasbert.training.configs import FineTuneConfig
    with kerasbert.training.training_run.TrainingRun(
        tempfile.mkdtemp(), FineTuneConfig(), {}
    ) as run:
        run.write_metrics({"answer": 42})["answer"]  # 42
    ```
    """

    def __init__(self, output_dir, config, data, *, settings=None, strategy=None):
        self.config = config
        self.settings = config.to_dict() if settings is None else settings
        self.strategy = strategy or tf.distribute.get_strategy()
        self.seed = config.seed
        fingerprint = {**config.result_dict(), "strategy": strategy_name(self.strategy),
                       "adam_update": ADAM_UPDATE, RUN_FORMAT_KEY: RUN_FORMAT}
        if settings is not None:
            # What a kind records beside its config (a built classifier's
            # config); corpus specs and task sizes are in the data identity.
            fingerprint["recorded"] = {k: v for k, v in settings.items()
                                       if k not in config.field_names()
                                       and k not in ("sources", "tasks")}
        self._run_directory = RunDirectory(
            output_dir, fingerprint, data, overwrite=config.overwrite,
            chief=is_chief(self.strategy)
        )
        self.directory = None
        self._history_files = []

    def __enter__(self):
        self.directory = self._run_directory.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self._run_directory.__exit__(*exc_info)

    @property
    def path(self):
        return self.directory.path

    def finished_metrics(self, *stages):
        """`metrics.json` of a finished run whose `stages` are done, else None."""
        run = self.directory
        if run.finished and all(run.done(stage) for stage in stages):
            return read_json(run.file(METRICS_FILE))
        return None

    def build(self, build_model, build_optimizer, mixed_precision=None):
        """Seed, then build and compile the model in the strategy's scope.

        Args:
            build_model: callable returning the model (called in scope).
            build_optimizer: callable taking the model, returning its
                optimizer; wrapped with loss scaling under
                `"mixed_float16"`.
            mixed_precision: str or None. The run's precision policy.
        """
        keras.utils.set_random_seed(self.seed)
        with self.strategy.scope():
            model = build_model()
            optimizer = with_loss_scaling(build_optimizer(model), mixed_precision)
            model.compile(optimizer=optimizer)
        return model

    def train(self, model, train_stream, validation_stream=None, *, steps_per_epoch, epochs,
              stage="trained", directory=None, **loop_arguments):
        """Run (or resume, or restore) the training loop; finish `stage`.

        Returns:
            `(loop, trained)`: the `TrainingLoop`, holding the final state,
            and the stage's record: `history`, `best`, `train_seconds` and
            `resumed_from_step`.
        """
        self.directory.begin()
        directory = directory or self.path
        relative = os.path.relpath(directory, self.path)
        if relative.split(os.sep)[0] == os.pardir:
            raise ValueError(f"The training directory {directory} must be inside the run "
                             f"directory {self.path}.")
        self.directory.claim(*([relative] if relative != os.curdir else
                               [CHECKPOINT_DIR, LOG_DIR, HISTORY_FILE]))
        # Recorded with metrics.json: a lost or edited history.csv makes the
        # rerun restore the finished training, which writes it again.
        self._history_files.append(os.path.normpath(os.path.join(relative, HISTORY_FILE)))
        loop = TrainingLoop(
            model, directory, steps_per_epoch=steps_per_epoch, epochs=epochs,
            strategy=self.strategy, **loop_arguments,
        )
        started = time.time()
        history = loop.fit(train_stream, validation_stream)
        if not self.directory.done(stage):
            self.directory.finish(stage, {
                "history": history, "best": loop.best, "train_seconds": time.time() - started,
                "resumed_from_step": loop.resumed_from_step,
            }, files=[os.path.relpath(os.path.join(directory, CHECKPOINT_DIR), self.path)])
        return loop, self.directory.result(stage)

    def save_preset(self, stage, name, *savables):
        """Write `save_to_preset` of each of `savables` into `name`, atomically."""
        if self.directory.done(stage):
            return
        with self.directory.atomic(name) as path:
            for savable in savables:
                savable.save_to_preset(path)
        self.directory.finish(stage, files=[name])

    def write_metrics(self, metrics):
        """Write `metrics.json` (the settings first) and finish the run."""
        metrics = self.directory.write_json(METRICS_FILE, {"settings": self.settings, **metrics})
        histories = [name for name in self._history_files
                     if os.path.isfile(self.directory.file(name))]
        self.directory.finish("metrics", files=[METRICS_FILE, *histories])
        return metrics
