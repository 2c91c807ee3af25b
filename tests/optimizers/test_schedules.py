import keras
import numpy as np
import pytest

import kerasbert
from kerasbert.optimizers.schedules import SlantedTriangular
from kerasbert.optimizers.schedules import WarmupLinearDecay


@pytest.mark.parametrize(
    "step, expected",
    [(0, 0.0), (50, 1e-5), (100, 2e-5), (550, 1e-5), (1000, 0.0), (1200, 0.0)],
)
def test_warmup_linear_decay_closed_form(step, expected):
    schedule = WarmupLinearDecay(2e-5, total_steps=1000, warmup_proportion=0.1)
    np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-5, atol=1e-12)


def test_no_warmup_starts_at_peak():
    schedule = WarmupLinearDecay(1.0, total_steps=10, warmup_proportion=0.0)
    assert [round(float(schedule(s)), 4) for s in (0, 5, 10)] == [1.0, 0.5, 0.0]


@pytest.mark.parametrize("step", [0, 30, 100, 101, 550, 999, 1000, 1500])
def test_slanted_triangular_matches_ulmfit_formula(step):
    total, cut_frac, ratio, peak = 1000, 0.1, 32, 0.01
    cut = int(total * cut_frac)
    t = min(step, total)
    p = t / cut if t < cut else 1 - (t - cut) / (cut * (1 / cut_frac - 1))
    expected = peak * (1 + p * (ratio - 1)) / ratio
    schedule = SlantedTriangular(peak, total, cut_fraction=cut_frac, ratio=ratio)
    np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "schedule",
    [WarmupLinearDecay(3e-5, 77, 0.2), SlantedTriangular(1e-3, 50, 0.2, 16)],
)
def test_schedules_serialize_and_drive_an_optimizer(schedule):
    revived = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert type(revived) is type(schedule)
    assert revived.get_config() == schedule.get_config()
    optimizer = keras.optimizers.Adam(schedule)
    restored = keras.optimizers.Adam.from_config(optimizer.get_config())
    assert float(restored.learning_rate) == pytest.approx(float(schedule(0)))


def test_public_names():
    assert kerasbert.schedules.WarmupLinearDecay is WarmupLinearDecay
    assert kerasbert.schedules.SlantedTriangular is SlantedTriangular


@pytest.mark.parametrize(
    "make",
    [
        lambda: WarmupLinearDecay(1e-3, 0),
        lambda: WarmupLinearDecay(1e-3, 10, warmup_proportion=1.0),
        lambda: SlantedTriangular(1e-3, 10, cut_fraction=0.0),
        lambda: SlantedTriangular(1e-3, 10, ratio=0.5),
    ],
)
def test_invalid_arguments(make):
    with pytest.raises(ValueError):
        make()
