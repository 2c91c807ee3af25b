"""Learning-rate schedules of BERT fine-tuning: warmup, then linear decay."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasbert")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to a peak, then linear decay to zero.

    The schedule of BERT and of Sun et al. (2019): for
    `warmup_steps = round(warmup_proportion * total_steps)`,

    lr(t) = peak · t / warmup_steps                                 if t < warmup_steps
    lr(t) = peak · (total_steps − t) / (total_steps − warmup_steps)  otherwise,

    and 0 from `total_steps` on.

    Args:
        peak_learning_rate: float. The rate reached at the end of warmup.
        total_steps: int. Steps until the rate reaches zero.
        warmup_proportion: float. The fraction of steps spent warming up.
            Defaults to `0.1`.

    Examples:
    ```python
    schedule = kerasbert.schedules.WarmupLinearDecay(2e-5, total_steps=1000)
    float(schedule(100))  # 2e-05, the peak
    float(schedule(550))  # 1e-05
    ```
    """

    def __init__(self, peak_learning_rate, total_steps, warmup_proportion=0.1, name=None):
        if total_steps < 1:
            raise ValueError(f"`total_steps` must be at least 1. Received: {total_steps}")
        if not 0 <= warmup_proportion < 1:
            raise ValueError(
                f"`warmup_proportion` must be in [0, 1). Received: {warmup_proportion}"
            )
        self.peak_learning_rate = peak_learning_rate
        self.total_steps = total_steps
        self.warmup_proportion = warmup_proportion
        self.name = name or "WarmupLinearDecay"

    @property
    def warmup_steps(self):
        return int(round(self.warmup_proportion * self.total_steps))

    def __call__(self, step):
        with keras.name_scope(self.name):
            step = ops.cast(step, "float32")
            warmup = float(max(self.warmup_steps, 1))
            decay = float(max(self.total_steps - self.warmup_steps, 1))
            rising = step / warmup
            falling = (float(self.total_steps) - step) / decay
            fraction = ops.where(step < self.warmup_steps, rising, falling)
            return self.peak_learning_rate * ops.clip(fraction, 0.0, 1.0)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_proportion": self.warmup_proportion,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="kerasbert")
class SlantedTriangular(keras.optimizers.schedules.LearningRateSchedule):
    """ULMFiT's slanted triangular learning rate (Howard & Ruder, 2018).

    With `cut = floor(total_steps · cut_fraction)`:

    p = t / cut                                          if t < cut
    p = 1 − (t − cut) / (cut · (1 / cut_fraction − 1))  otherwise
    lr(t) = peak · (1 + p · (ratio − 1)) / ratio

    so the rate climbs from `peak / ratio` to `peak` and falls back to
    `peak / ratio` at `total_steps`.

    Args:
        peak_learning_rate: float. The highest rate.
        total_steps: int. The length of the schedule.
        cut_fraction: float. The fraction of steps spent increasing.
            Defaults to `0.1`.
        ratio: float. How much smaller the lowest rate is than the peak.
            Defaults to `32`.

    Examples:
    ```python
    schedule = kerasbert.schedules.SlantedTriangular(0.01, total_steps=1000)
    float(schedule(100))  # 0.01, the peak
    ```

    References:
    - [Howard & Ruder, 2018](https://arxiv.org/abs/1801.06146), eq. 3.
    """

    def __init__(
        self, peak_learning_rate, total_steps, cut_fraction=0.1, ratio=32, name=None
    ):
        if total_steps < 1:
            raise ValueError(f"`total_steps` must be at least 1. Received: {total_steps}")
        if not 0 < cut_fraction < 1:
            raise ValueError(f"`cut_fraction` must be in (0, 1). Received: {cut_fraction}")
        if ratio < 1:
            raise ValueError(f"`ratio` must be at least 1. Received: {ratio}")
        self.peak_learning_rate = peak_learning_rate
        self.total_steps = total_steps
        self.cut_fraction = cut_fraction
        self.ratio = ratio
        self.name = name or "SlantedTriangular"

    def __call__(self, step):
        with keras.name_scope(self.name):
            step = ops.minimum(ops.cast(step, "float32"), float(self.total_steps))
            cut = float(max(int(self.total_steps * self.cut_fraction), 1))
            rising = step / cut
            falling = 1.0 - (step - cut) / (cut * (1.0 / self.cut_fraction - 1.0))
            p = ops.clip(ops.where(step < cut, rising, falling), 0.0, 1.0)
            return self.peak_learning_rate * (1.0 + p * (self.ratio - 1.0)) / self.ratio

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "cut_fraction": self.cut_fraction,
            "ratio": self.ratio,
            "name": self.name,
        }
