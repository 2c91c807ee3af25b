import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_plot_schedules_writes_png(tmp_path):
    output = tmp_path / "schedules.png"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "plot_schedules.py"),
         "--total_steps=50", f"--output={output}"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
