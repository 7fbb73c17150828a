"""Shared fixtures. Real-sample tests read PC_KD_REAL_DATA (CI sets it to ../shared/realdata)."""
import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)
if not torch.cuda.is_available():
    # Triton kernels run in its interpreter on CPU (must be set before triton compiles anything).
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _real_root():
    env = os.environ.get("PC_KD_REAL_DATA")
    return Path(env) if env else None


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Folder of the real sensor samples; skips (or fails when PC_KD_REQUIRE_REAL_DATA=1) if absent."""
    root = _real_root()
    if root is None or not root.is_dir():
        msg = (f"real samples not found (PC_KD_REAL_DATA={os.environ.get('PC_KD_REAL_DATA')!r}); set "
               f"PC_KD_REAL_DATA=../shared/realdata to run these checks")
        if os.environ.get("PC_KD_REQUIRE_REAL_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def synthetic_indoor_root(tmp_path_factory) -> Path:
    """A small synthetic indoor dataset (train: 2 scenes, val: 1), generated once per test session."""
    from pc_kd.datasets.synthetic import write_indoor_dataset

    root = tmp_path_factory.mktemp("synthetic_indoor")
    write_indoor_dataset(root, "train", num_scenes=2, seed=3, num_views=2, image_hw=(120, 160), num_points=6000)
    write_indoor_dataset(root, "val", num_scenes=1, seed=3, num_views=2, image_hw=(120, 160), num_points=6000)
    return root


@pytest.fixture(scope="session")
def demo_bev():
    """``tools/demo_bev.py`` as a module (a script, not part of the package), for tests of its pieces."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_bev", Path(__file__).resolve().parents[1] / "tools" /
                                                  "demo_bev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_until_then_kill(cmd, cwd, checkpoint: Path, timeout_s: float = 240) -> str:
    """Start ``cmd`` (a tools/train.py command), SIGKILL it as soon as ``checkpoint`` is saved and named by the
    work dir's ``last_checkpoint`` file (as a crashed node or a pre-empted job would; mmengine writes that file
    just after the checkpoint), and return what it printed. Fails if it stops earlier or takes too long."""
    import signal
    import subprocess
    import time

    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + timeout_s
    last = checkpoint.parent / "last_checkpoint"

    def saved():
        return checkpoint.exists() and last.exists() and last.read_text().strip().endswith(checkpoint.name)

    while not saved():
        assert proc.poll() is None, f"training stopped early:\n{proc.stdout.read()[-3000:]}"
        assert time.time() < deadline, f"no {checkpoint.name} after {timeout_s} s"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.stdout.read()
