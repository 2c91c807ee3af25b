"""The README's "Use it from Python" example runs as written."""

import os
import re

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_use_it_from_python_example_runs(tmp_path, monkeypatch):
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = readme.split("## Use it from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 'from_preset(\n    "minilm"' in code and "save_to_preset" in code
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["logits"].shape == (1, 3)
    restored = namespace["restored"]
    assert restored.label_names == ["HUM", "LOC", "NUM"]
    np.testing.assert_allclose(
        restored.predict(["who painted the mona lisa ?"], verbose=0),
        namespace["logits"], atol=1e-5)
