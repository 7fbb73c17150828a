"""``pc-kd doctor``: what pc_kd finds on this machine, for a bug report or before a long job.

Sections: versions of the packages pc_kd uses, the sparse-convolution backend and the algorithm it runs, CUDA
and the GPUs, whether the Triton kernels or their PyTorch twins run, headless open3d rendering (tried in a
child process, which a broken EGL / Mesa cannot take down), and where data, teacher weights and caches are.
"""
import importlib
import importlib.metadata as metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["torch", "mmengine", "numpy", "spconv-cu120", "spconv-cu126", "spconv", "spconv-triton", "triton",
            "open3d", "nuscenes-devkit", "timm", "torchvision", "scipy", "numba", "tensorboard"]
DATA_FOLDERS = {"ScanNet": "data/scannet", "S3DIS": "data/s3dis", "nuScenes": "data/nuscenes",
                "synthetic rooms": "data/synthetic_indoor", "synthetic driving": "data/synthetic_driving"}
_RENDER_PROBE = """
import numpy as np, open3d as o3d
r = o3d.visualization.rendering.OffscreenRenderer(32, 32)
pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.random.rand(100, 3)))
m = o3d.visualization.rendering.MaterialRecord(); m.shader = "defaultUnlit"
r.scene.add_geometry("p", pc, m); r.setup_camera(60.0, [0.5, 0.5, 0.5], [2, 2, 2], [0, 0, 1])
img = np.asarray(r.render_to_image()); print("ok", img.shape)
"""


def package_versions() -> Dict[str, str]:
    """Installed version of each package in PACKAGES ('-' when not installed)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name in ("spconv", "spconv-cu120", "spconv-cu126"):
                continue  # only the installed spconv wheel is listed
            out[name] = "-"
    return out


def torch_report() -> List[Tuple[str, str]]:
    import torch
    rows = [("torch build", f"{torch.__version__} (CUDA {torch.version.cuda or 'none'})"),
            ("CPU threads", str(torch.get_num_threads()))]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            rows.append((f"GPU {i}", f"{p.name}, {p.total_memory / 2**30:.0f} GiB, compute {p.major}.{p.minor}"))
    else:
        rows.append(("GPU", "none visible (CUDA not available): ops run their PyTorch twins on CPU"))
    return rows


def sparse_report() -> List[Tuple[str, str]]:
    try:
        from pc_kd.ops import sparse
        name = sparse.backend_name()
    except Exception as err:  # noqa: BLE001 - reported, not raised
        return [("sparse conv", f"not available: {str(err).splitlines()[0]}")]
    algo = ("ConvAlgo.Native on CPU tensors (exact at any thread count); spconv's default implicit GEMM on CUDA"
            if name == "spconv" else "Triton kernels (CUDA / ROCm)")
    return [("sparse conv", f"{name} ({algo})")]


def kernels_report() -> List[Tuple[str, str]]:
    import torch
    try:
        importlib.import_module("triton")
        triton = True
    except ImportError:
        triton = False
    if torch.cuda.is_available() and triton:
        return [("pc_kd ops", "Triton kernels on CUDA tensors, PyTorch twins on CPU tensors")]
    why = "no CUDA" if triton else "triton not installed"
    return [("pc_kd ops", f"PyTorch twins ({why}); TRITON_INTERPRET=1 runs the kernels on CPU for the tests")]


def render_report(timeout: float = 120.0) -> List[Tuple[str, str]]:
    env = dict(os.environ)
    env.setdefault("EGL_PLATFORM", "surfaceless")
    try:
        probe = subprocess.run([sys.executable, "-c", _RENDER_PROBE], capture_output=True, text=True, env=env,
                               timeout=timeout)
    except subprocess.TimeoutExpired:
        return [("headless render", f"open3d did not answer in {timeout:.0f} s")]
    if probe.returncode == 0 and "ok" in probe.stdout:
        return [("headless render", f"works (open3d OffscreenRenderer, EGL_PLATFORM={env['EGL_PLATFORM']})")]
    tail = (probe.stderr or probe.stdout).strip().splitlines()[-1:] or [f"exit status {probe.returncode}"]
    return [("headless render", f"fails: {tail[0][:160]} (install the [vis] extra; on a server set "
                                f"EGL_PLATFORM=surfaceless; BEV pictures need only matplotlib)")]


def data_report(cwd: Path) -> List[Tuple[str, str]]:
    rows = []
    for what, folder in DATA_FOLDERS.items():
        path = cwd / folder
        if not path.is_dir():
            how = ("made on first use by its configs" if what.startswith("synthetic") else
                   "convert the download with pc-kd create-infos, or link an mmdet3d-processed folder there")
            rows.append((what, f"{folder}: not there yet ({how})"))
            continue
        infos = sorted(p.name for p in path.glob("*_infos_*.pkl"))
        rows.append((what, f"{folder}: {', '.join(infos) if infos else 'no info files yet'}"))
    real = os.environ.get("PC_KD_REAL_DATA")
    rows.append(("PC_KD_REAL_DATA", real or "not set (the real-sample tests are skipped)"))
    return rows


def weights_report(cwd: Path) -> List[Tuple[str, str]]:
    import torch
    checkpoints = sorted(p.name for p in (REPO / "checkpoints").glob("*.pth"))
    rows = [("checkpoints/", ", ".join(checkpoints) if checkpoints else "none (make teacher writes the demo's)"),
            ("torch hub cache", torch.hub.get_dir()),
            ("HF / timm cache", os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface")))]
    return rows


def report(render: bool = True) -> List[Tuple[str, List[Tuple[str, str]]]]:
    """The doctor's sections as ``[(title, [(name, value), ...]), ...]``."""
    cwd = Path.cwd()
    versions = package_versions()
    sections = [("system", [("python", sys.version.split()[0]), ("platform", platform.platform()),
                            ("pc_kd", f"{_own_version()} at {REPO}")]),
                ("packages", list(versions.items())),
                ("compute", torch_report() + sparse_report() + kernels_report())]
    if render:
        sections.append(("pictures", render_report()))
    sections.append(("data (relative to " + str(cwd) + ")", data_report(cwd)))
    sections.append(("weights", weights_report(cwd)))
    return sections


def _own_version() -> str:
    try:
        return metadata.version("pc_kd")
    except metadata.PackageNotFoundError:
        return "not installed (running from the source tree)"


def print_report(render: bool = True) -> int:
    for title, rows in report(render):
        print(f"{title}:")
        width = max((len(name) for name, _ in rows), default=0)
        for name, value in rows:
            print(f"  {name:{width}s}  {value}")
    return 0
