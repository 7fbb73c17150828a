"""Transforms of part-labelled shapes with knowledge units (PartDistill): the anchor's augmentation and packing."""
import numpy as np
import torch
from mmengine.structures import BaseDataElement

from pc_kd.registry import TRANSFORMS
from pc_kd.structures import Point3DDataSample
from pc_kd.structures.part_units import unit_score_matrix


@TRANSFORMS.register_module()
class PartShapeAugment:
    """PartDistill's augmentation of ``points [N, 3]``: a scale U(``scale``) per axis, a shift U(-``shift``,
    ``shift``) per axis, a jitter N(0, ``jitter_sigma``) per point clipped to +-``jitter_clip``. Draws from numpy's
    global generator (which the Runner seeds per worker)."""

    def __init__(self, scale=(0.9, 1.1), shift: float = 0.1, jitter_sigma: float = 0.01, jitter_clip: float = 0.02):
        self.scale, self.shift = tuple(scale), float(shift)
        self.jitter_sigma, self.jitter_clip = float(jitter_sigma), float(jitter_clip)

    def __call__(self, results: dict) -> dict:
        pts = np.asarray(results["points"], np.float32)
        scale = np.random.uniform(*self.scale, size=(1, 3))
        shift = np.random.uniform(-self.shift, self.shift, size=(1, 3))
        jitter = np.clip(np.random.normal(0, self.jitter_sigma, pts.shape), -self.jitter_clip, self.jitter_clip)
        results["points"] = (pts * scale + shift + jitter).astype(np.float32)
        return results


@TRANSFORMS.register_module()
class PackPartUnitsInputs:
    """Pack a part-labelled shape: ``inputs = {'points': [N, 6]}`` (xyz, then xyz again as the point features);
    ``data_samples``: ``part_units`` (``scores [N, K]``: :func:`~pc_kd.structures.part_units.unit_score_matrix` of
    the sample's ``unit_points`` / ``unit_scores``, ``labels [K]``), ``gt_pts_seg.pts_semantic_mask [N]`` (the
    metric's), meta ``sample_idx``."""

    def __call__(self, results: dict) -> dict:
        xyz = torch.from_numpy(np.ascontiguousarray(results["points"], dtype=np.float32))
        sample = Point3DDataSample(metainfo=dict(sample_idx=results.get("sample_idx")))
        sample.part_units = BaseDataElement(
            scores=unit_score_matrix(len(xyz), results["unit_points"], results["unit_scores"]),
            labels=torch.as_tensor(np.asarray(results["unit_labels"], np.int64)))
        if "pts_semantic_mask" in results:
            sample.gt_pts_seg = BaseDataElement(
                pts_semantic_mask=torch.from_numpy(np.asarray(results["pts_semantic_mask"], np.int64)))
        return {"inputs": {"points": torch.cat([xyz, xyz], 1)}, "data_samples": sample}
