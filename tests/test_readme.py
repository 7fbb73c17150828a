"""The README's promises that can rot: the test count it states (one place, checked against the suite) and its
Python snippets, run as written in a fresh folder."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_the_readme_states_the_suites_test_count_in_one_place():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600).stdout
    collected = int(re.search(r"(\d+) tests? collected", out).group(1))
    text = README.read_text()
    stated = [int(n) for n in re.findall(r"\b(\d+) tests\b", text)]
    assert stated == [collected], f"README states {stated} tests, the suite has {collected}: update *Tests*"
    for doc in [*(ROOT / "docs").rglob("*.md"), ROOT / "benchmarks" / "README.md"]:
        assert not re.search(r"\b\d{3} tests\b", doc.read_text()), f"{doc}: the test count belongs in the README"


def _python_snippets():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_the_readme_has_python_snippets():
    assert len(_python_snippets()) >= 2


@pytest.mark.parametrize("index", range(len(_python_snippets())))
def test_each_readme_python_snippet_runs_as_written(index, tmp_path):
    """In a folder where the demos have already made their synthetic driving data (with other settings), so the
    data a snippet generates must not collide with it."""
    code = _python_snippets()[index]
    (tmp_path / "data" / "synthetic_driving").mkdir(parents=True)
    (tmp_path / "data" / "synthetic_driving" / "synthetic_driving_params.json").write_text(
        '{"seed": 0, "image_hw": [64, 112]}')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
