import numpy as np
import pytest

import kerasbert
from tests.training.test_fine_tuning import sentiment_data
from tests.training.test_pretraining import KillAtStep


def tasks():
    topic = kerasbert.LabeledTexts(
        [f"who was {n} ?" if i % 2 else f"where is {n} ?"
         for i, n in enumerate(["galileo", "paris", "aspen", "bach"] * 6)],
        np.array([1, 0] * 12, np.int32), ["LOC", "HUM"], "synthetic-topic",
    )
    return {
        "sentiment": kerasbert.TaskData(sentiment_data(24, 0), sentiment_data(8, 1),
                                    sequence_length=16),
        "topic": kerasbert.TaskData(topic, sequence_length=16, truncation="tail"),
    }


RUN = dict(epochs=1, batch_size=8, learning_rate=3e-3, checkpoint_every_steps=2,
           export=False, verbose=0)


@pytest.mark.slow
def test_killed_joint_phase_resumes_to_the_uninterrupted_result(tmp_path):
    expected = kerasbert.multitask_fine_tune("tiny", tasks(), str(tmp_path / "whole"), **RUN)
    with pytest.raises(KeyboardInterrupt):
        kerasbert.multitask_fine_tune("tiny", tasks(), str(tmp_path / "killed"),
                                      callbacks=[KillAtStep(5)], **RUN)
    metrics = kerasbert.multitask_fine_tune("tiny", tasks(), str(tmp_path / "killed"), **RUN)
    assert metrics["joint_epochs"] == expected["joint_epochs"]
    assert metrics["joint"] == expected["joint"]
    whole, _ = kerasbert.load_backbone(str(tmp_path / "whole" / "shared_backbone"))
    resumed, _ = kerasbert.load_backbone(str(tmp_path / "killed" / "shared_backbone"))
    for a, b in zip(whole.weights, resumed.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_multitask_arguments_are_checked_before_building(tmp_path):
    with pytest.raises(ValueError, match="Task names must be identifiers"):
        kerasbert.multitask_fine_tune("tiny", {"a b": tasks()["topic"], **tasks()},
                                      str(tmp_path / "r"))
    with pytest.raises(ValueError, match="needs at least two tasks"):
        kerasbert.multitask_fine_tune("tiny", {"topic": tasks()["topic"]}, str(tmp_path / "r"))
    with pytest.raises(ValueError, match="`seed` must be an integer in"):
        kerasbert.multitask_fine_tune("tiny", tasks(), str(tmp_path / "r"), seed=-1)
    with pytest.raises(ValueError, match="classifier.*must be 'cls'"):
        kerasbert.multitask_fine_tune("tiny", tasks(), str(tmp_path / "r"),
                                      classifier="feature_bilstm", layers=-1)
    with pytest.raises(ValueError, match="`finetune_epochs` must be a positive integer"):
        kerasbert.multitask_fine_tune("tiny", tasks(), str(tmp_path / "r"), finetune_epochs=0)
    assert not (tmp_path / "r").exists()
