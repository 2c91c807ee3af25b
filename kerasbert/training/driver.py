"""The one driver: runs any `Experiment` through the run directory, the
loop and the stages after training."""

import tensorflow as tf

from kerasbert.data.generator_dataset import generator_errors_raised
from kerasbert.training.distribute import lost_workers_named
from kerasbert.training.distribute import make_strategy
from kerasbert.training.training_run import TrainingRun


def strategy_for(config, strategy=None):
    """`strategy` if given, else the one `config.strategy` names (the
    current strategy for `"default"`)."""
    if isinstance(strategy, str):
        raise ValueError(
            f"`strategy` must be a tf.distribute.Strategy; to name one ({strategy!r}), set the "
            "config's `strategy` setting instead.")
    if strategy is not None:
        return strategy
    if config.strategy == "default":
        return tf.distribute.get_strategy()
    return make_strategy(config.strategy, config.tpu, config.cluster_timeout)


def run_experiment(experiment, output_dir, *, strategy=None, callbacks=None):
    """Run, resume or return a finished run of `experiment` in `output_dir`.

    The stages, in order: open the run directory (locked, fingerprinted by
    the result-changing settings and the data identity; other settings are
    refused unless `config.overwrite`); return `metrics.json` of a finished
    run; seed, build and compile the model in the strategy's scope; check
    it; train (resuming from the last checkpoint, or restoring a finished
    training); the experiment's stages after training; `metrics.json`.

    Args:
        experiment: a `kerasbert.training.experiment.Experiment`.
        output_dir: str. The run directory.
        strategy: `tf.distribute.Strategy` or None (the one the config
            names).
        callbacks: list of Keras callbacks or None, run by the loop after
            its own logging and checkpointing.

    Returns:
        The dict written to `metrics.json`.
    """
    config = experiment.config
    strategy = strategy_for(config, strategy)
    settings = experiment.recorded_settings()
    with lost_workers_named(strategy):
        return _run(experiment, output_dir, config, strategy, settings, callbacks)


def _run(experiment, output_dir, config, strategy, settings, callbacks):
    with TrainingRun(output_dir, config, experiment.data_identity(),
                     settings=settings if settings != config.to_dict() else None,
                     strategy=strategy) as run:
        finished = run.finished_metrics(*experiment.finished_stages())
        if finished is not None:
            if config.verbose and run.directory.chief:
                print(f"{run.path} holds this run, finished: its results, with nothing "
                      "trained again.", flush=True)
            return finished
        model = run.build(experiment.build_model, experiment.build_optimizer,
                          experiment.mixed_precision())
        experiment.check_model(model)
        # Every check passed: only now may `overwrite` clear an older run.
        run.directory.begin()
        run.directory.claim(*experiment.written_entries())
        loop_options = dict(experiment.loop_options())
        if config.steps_per_loop is not None:
            loop_options["steps_per_loop"] = config.steps_per_loop
        with generator_errors_raised():
            loop, trained = run.train(
                model, experiment.train_stream, experiment.validation_stream(),
                steps_per_epoch=experiment.steps_per_epoch(), epochs=experiment.epochs(),
                monitor=experiment.monitor(), jit_compile=config.jit_compile,
                per_worker_input=config.per_worker_input, callbacks=callbacks,
                verbose=config.verbose,
                directory=run.directory.file(experiment.train_directory)
                if experiment.train_directory else None,
                **loop_options,
            )
        metrics = experiment.after_training(run, loop, trained)
        return run.write_metrics(metrics)
