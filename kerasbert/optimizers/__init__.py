from kerasbert.optimizers import schedules  # noqa: F401
