"""The one interface every kind of run implements (Model Garden's `Task`)."""


class Experiment:
    """What differs between fine-tuning, multi-task training and pre-training.

    `kerasbert.training.driver.run_experiment` runs any experiment the same
    way: it opens the run directory (lock, fingerprint of
    `config.result_dict()` plus `data_identity()`), returns the metrics of a
    finished run, seeds, builds the model and its optimizer in the
    strategy's scope, checks the built model, trains it with the
    `TrainingLoop` (resuming exactly), and hands over to `after_training`
    for the stages after training (test, presets, export), each a stage of
    the run directory. The stages have the same names in every kind:
    `trained`, `tested`, `saved_preset`, `exported`.

    A subclass sets `config` (a `kerasbert.training.configs` config) in its
    constructor and implements the methods below.
    """

    config = None
    # The training stage's subdirectory of the run directory, or None.
    train_directory = None

    def data_identity(self):
        """A JSON-ready identity of the data read (see `fingerprint`)."""
        raise NotImplementedError

    def recorded_settings(self):
        """The settings written into `metrics.json`."""
        return self.config.to_dict()

    def finished_stages(self):
        """The stages a finished run must also hold to be returned as is
        (e.g. `exported` when this call asks for an export)."""
        return ()

    def mixed_precision(self):
        """The run's precision policy name, or None for float32."""
        return self.config.mixed_precision

    def build_model(self):
        """The model to train; called in the strategy's scope."""
        raise NotImplementedError

    def build_optimizer(self, model):
        """The optimizer of `model`; called in the strategy's scope."""
        raise NotImplementedError

    def check_model(self, model):
        """Checks that need the built model (lengths, vocabulary)."""

    def written_entries(self):
        """Top-level names this kind writes into the run directory by paths
        of its own (not through the run directory's stages or the training
        loop), claimed in the run's ledger before training starts."""
        return ()

    def steps_per_epoch(self):
        raise NotImplementedError

    def epochs(self):
        return self.config.epochs

    def monitor(self):
        """The validation metric that picks the best epoch, or None."""
        return None

    def train_stream(self, context=None):
        """The endless, deterministic training `tf.data.Dataset` (of this
        worker's share, given a `tf.distribute.InputContext`)."""
        raise NotImplementedError

    def validation_stream(self):
        """A function returning the finite validation dataset, or None."""
        return None

    def loop_options(self):
        """Further `TrainingLoop` arguments of this kind."""
        return {"checkpoint_every_steps": self.config.checkpoint_every_steps}

    def after_training(self, run, loop, trained):
        """Run the stages after training; return the metrics to record.

        Args:
            run: the `TrainingRun` (its `directory` finishes stages).
            loop: the `TrainingLoop`, holding the trained model.
            trained: the `trained` stage's record (`history`, `best`,
                `train_seconds`, `resumed_from_step`).
        """
        raise NotImplementedError

    def summary(self, metrics, output_dir):
        """A few lines for a person at the end of a run (not the JSON)."""
        return [f"Outputs in {output_dir}"]
