"""Offline multi-view fusion of a 2D teacher's features into a scene's points (OpenScene / PointDC targets)."""
import logging
import time
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from PIL import Image

from .backproject import backproject_features


class MissingFrameError(FileNotFoundError):
    """A scene's frame (image, depth or pose) cannot be read; the message names the scene and file."""


def load_frames(frames: List[dict], scene: str, step: int = 1, with_depth: bool = True):
    """Every ``step``-th frame of ``frames`` (info ``images`` entries): ``images [V, 3, H, W]`` float 0..1,
    ``lidar2img [V, 4, 4]`` float64 (``cam2img @ inv(cam2world)``), ``depth [V, H, W]`` metres or None."""
    frames = frames[::step]
    if not frames:
        raise MissingFrameError(f"scene {scene}: no posed frames listed; export frames (color/, pose/, "
                                f"intrinsic/) or drop the scene")
    images, mats, depths = [], [], []
    for f in frames:
        path = Path(f["img_path"])
        if not path.is_file():
            raise MissingFrameError(f"scene {scene}: image {path} not found")
        pose = np.asarray(f.get("cam2world"), dtype=np.float64)
        if pose.shape != (4, 4) or not np.isfinite(pose).all():
            raise MissingFrameError(f"scene {scene}: frame {path.name} has no valid cam2world pose")
        images.append(np.asarray(Image.open(path).convert("RGB")))
        K = np.eye(4)
        cam2img = np.asarray(f["cam2img"], dtype=np.float64)
        K[:cam2img.shape[0], :cam2img.shape[1]] = cam2img
        mats.append(K @ np.linalg.inv(pose))
        dpath = f.get("depth_path")
        if with_depth and dpath:
            if not Path(dpath).is_file():
                raise MissingFrameError(f"scene {scene}: depth image {dpath} not found")
            depths.append(np.asarray(Image.open(dpath)).astype(np.float32) / float(f.get("depth_shift", 1000.0)))
    sizes = {im.shape[:2] for im in images}
    if len(sizes) != 1:
        raise ValueError(f"scene {scene}: frames of different sizes {sorted(sizes)}")
    h, w = images[0].shape[:2]
    imgs = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    depth = None
    for f, d in zip(frames, depths):
        if abs(d.shape[1] / d.shape[0] - w / h) > 0.01 * w / h:
            raise MissingFrameError(
                f"scene {scene}: depth image {f['depth_path']} is {d.shape[1]} x {d.shape[0]} for a {w} x {h} colour "
                f"frame: another aspect ratio, so it is not the colour camera's view scaled, and pc_kd has no "
                f"intrinsics for it. Register the depth maps to the colour frames (same aspect ratio; any size), or "
                f"fuse with visibility='zbuffer'")
    if with_depth and len(depths) == len(images):
        depth = torch.from_numpy(np.stack([d if d.shape == (h, w) else _resize_nearest(d, (h, w)) for d in depths]))
    return imgs, torch.from_numpy(np.stack(mats)), depth


def _resize_nearest(depth: np.ndarray, hw) -> np.ndarray:
    """Depth images of another size (ScanNet: 640 x 480 for 1296 x 968 colour) resized to the colour frame."""
    return F.interpolate(torch.from_numpy(depth)[None, None], size=hw, mode="nearest")[0, 0].numpy()


@torch.no_grad()
def fuse_scene(teacher: torch.nn.Module, points: torch.Tensor, frames: List[dict], scene: str, *,
               frame_step: int = 1, border: int = 2, visibility: str = "auto", depth_tol: float = 0.25,
               zbuffer_radius: int = 3, batch_frames: int = 8, device: Optional[str] = None):
    """Mean teacher feature of every point over the frames that see it.

    Args:
        teacher: frozen module mapping ``[B, 3, H, W]`` (0..1) to ``[B, C, h, w]``.
        points: ``[N, 3]`` in the frame the poses map to (the scan frame).
        visibility: ``auto`` (depth images when every frame has one, else z-buffer), ``depth``, ``zbuffer``
            or ``none``.

    Returns:
        ``feats [N, C]`` float16 (zeros where unseen) and ``count [N]`` int32 views per point.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    images, lidar2img, depth = load_frames(frames, scene, frame_step, with_depth=visibility in ("auto", "depth"))
    mode = visibility
    if visibility == "auto":
        mode = "depth" if depth is not None else "zbuffer"
    elif visibility == "depth" and depth is None:
        raise MissingFrameError(f"scene {scene}: visibility='depth' but not every frame has a depth image")
    hw = tuple(images.shape[2:])
    pts = points.to(device)
    total, count = None, torch.zeros(len(points), dtype=torch.long, device=device)
    for start in range(0, len(images), batch_frames):
        sl = slice(start, start + batch_frames)
        feats = teacher(images[sl].to(device))
        if feats.ndim != 4:
            raise ValueError(f"teacher returned a tensor of rank {feats.ndim}; expected [B, C, h, w]")
        out, n = backproject_features(pts, feats, lidar2img[sl].to(device), hw, visibility=mode,
                                      depth_maps=depth[sl].to(device) if mode == "depth" else None,
                                      depth_tol=depth_tol, zbuffer_radius=zbuffer_radius, border=border,
                                      reduce="sum")
        if total is None:
            total = out  # the op's own buffer: summed into in place, as are the later batches
        else:
            total += out
        count += n
        del out
    total /= count.clamp(min=1)[:, None].to(total.dtype)
    return total.to(torch.float16, memory_format=torch.contiguous_format).cpu(), count.int().cpu()


def fusion_fingerprint(teacher_cfg, options: dict) -> str:
    """What decides a fused file's content: the teacher's config, the checksum of its weights file
    (``pretrained``) when there is one, in place of its path (the same file reached by another path, relative or
    absolute, is the same teacher), and the fusion options; recorded in the manifest, so files made with another
    teacher or config are redone, and ``--verify`` calls them stale."""
    from pc_kd.utils.manifest import file_sha256, fingerprint

    teacher = teacher_cfg.to_dict() if hasattr(teacher_cfg, "to_dict") else teacher_cfg
    weights = teacher.get("pretrained") if isinstance(teacher, dict) else None
    if weights and Path(weights).is_file():
        teacher = dict(teacher, pretrained=Path(weights).name, pretrained_sha256=file_sha256(weights))
    return fingerprint(dict(teacher=teacher, **options))


def fuse_dataset(teacher: torch.nn.Module, infos: List[dict], out_dir, *, on_missing: str = "fail",
                 device: Optional[str] = None, desc: str = "fusing", fingerprint: Optional[str] = None,
                 shard: Tuple[int, int] = (0, 1), **options) -> dict:
    """Fuse the teacher's features into every scene of ``infos`` (data infos with ``lidar_path``,
    ``num_pts_feats`` and posed ``images``): ``<out_dir>/<points file stem>.npz`` with ``feats`` (float16
    ``[N, C]``) and ``count`` (int32 ``[N]``), written atomically and byte-reproducibly, each recorded in the
    manifest of ``out_dir`` (:class:`pc_kd.utils.manifest.SceneManifest`, as process ``shard`` = (i, n), with
    ``fingerprint``, default: the teacher's class and ``options``). Scenes recorded with the same fingerprint
    whose file is intact are skipped (resume by calling again); a scene whose frames cannot be read raises
    (``on_missing='fail'``) or is logged and left out (``'skip'``). ``options`` go to :func:`fuse_scene`.

    Returns ``dict(written, skipped, missing [scene names], coverage, seconds)``, coverage being the share of
    points seen by at least one frame.
    """
    from tqdm import tqdm

    from pc_kd.utils.io import read_bin, save_npz_reproducible
    from pc_kd.utils.manifest import SceneManifest

    if on_missing not in ("fail", "skip"):
        raise ValueError(f"on_missing must be 'fail' or 'skip', got {on_missing!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = SceneManifest(out, fingerprint or fusion_fingerprint(type(teacher).__name__, options), shard)
    written, skipped, missing, seen, total = 0, 0, [], 0, 0
    start = time.perf_counter()
    for info in tqdm(infos, desc=desc, unit="scene"):
        scene = Path(info["lidar_path"]).stem
        target = out / f"{scene}.npz"
        if manifest.is_done(scene, target.name):
            count = np.load(target)["count"]
            skipped += 1
        else:
            points = read_bin(info["lidar_path"], np.float32, info["num_pts_feats"], what="points file")
            try:
                feats, count = fuse_scene(teacher, torch.from_numpy(points[:, :3].astype(np.float64)),
                                          info.get("images", []), scene, device=device, **options)
            except MissingFrameError as err:
                if on_missing == "fail":
                    raise
                print_log(f"skipping: {err}", "current", logging.WARNING)
                missing.append(scene)
                continue
            count = count.numpy()
            save_npz_reproducible(target, feats=feats.numpy(), count=count)
            manifest.record(scene, target.name)
            written += 1
        seen += int((count > 0).sum())
        total += len(count)
    return dict(written=written, skipped=skipped, missing=missing, coverage=seen / max(total, 1),
                seconds=time.perf_counter() - start)
