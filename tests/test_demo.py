"""The README's main command, in its reduced mode: every stage runs and the report points at real files."""

import re
import subprocess
import sys
from pathlib import Path


def test_demo_quick_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "facedancer.cli.main", "demo", "--quick", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = out / "report.html"
    assert result.stdout.strip().endswith(str(report))
    text = report.read_text()
    links = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert len(links) >= 12
    for link in links:
        assert (out / link).exists(), link
    assert "cannot make a good face swapper" in text and "random weights" in text
    assert "facedancer swap --facedancer_path" in text
    for name in ("swapped.mp4", "target.mp4", "evaluation/results.json", "evaluation/chart.png"):
        assert (out / name).exists()
    assert list(Path(out / "runs").glob("*-demo/logs/train/events.out.tfevents.*"))
    assert "judge_dist_source" in (out / "evaluation" / "results.csv").read_text()
