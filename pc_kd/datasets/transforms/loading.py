"""Loading transforms: points, semantic/instance masks and 3D boxes from the paths in a data info."""
import numpy as np

from pc_kd.registry import TRANSFORMS
from pc_kd.structures import Boxes3D
from pc_kd.structures.class_names import apply_label_mapping
from pc_kd.utils.checks import check_finite_points
from pc_kd.utils.io import read_bin


@TRANSFORMS.register_module()
class LoadPointsFromFile:
    """Read ``results['lidar_path']`` (float32 rows of ``load_dim`` values) into ``results['points']``.

    Args:
        load_dim: values per row in the file (6 for x y z r g b, 5 for nuScenes x y z intensity ring);
            ``None`` takes the info's ``num_pts_feats``.
        use_dim: columns kept, xyz first.
        color_scale: divide columns 3.. by this (255 turns 0..255 colours into 0..1), or by one value per column
            (e.g. ``(255.0, 1.0)`` for intensity 0..255 and a height kept in metres); ``None`` keeps them.

    Adds ``points [N, len(use_dim)]`` float32 and ``num_points``.
    """

    def __init__(self, load_dim=6, use_dim=(0, 1, 2, 3, 4, 5), color_scale=None):
        self.load_dim, self.use_dim, self.color_scale = load_dim, list(use_dim), color_scale
        if self.use_dim[:3] != [0, 1, 2]:
            raise ValueError(f"LoadPointsFromFile: use_dim must start with 0, 1, 2 (xyz), got {use_dim}")

    def __call__(self, results: dict) -> dict:
        path = results["lidar_path"]
        load_dim = self.load_dim or results.get("num_pts_feats", 6)
        if max(self.use_dim) >= load_dim:
            raise ValueError(f"LoadPointsFromFile: use_dim {self.use_dim} needs more than load_dim={load_dim} "
                             f"columns ({path})")
        points = read_bin(path, np.float32, load_dim, what="points file")
        check_finite_points(points, f"points file {path}")
        points = points[:, self.use_dim].copy()
        if self.color_scale:
            scale = np.asarray(self.color_scale, dtype=np.float32)
            if scale.ndim and len(scale) != points.shape[1] - 3:
                raise ValueError(f"LoadPointsFromFile: color_scale {self.color_scale} has {len(scale)} values for "
                                 f"{points.shape[1] - 3} feature columns (use_dim {self.use_dim} after xyz)")
            points[:, 3:] /= scale
        results["points"] = points
        results["num_points"] = len(points)
        return results


@TRANSFORMS.register_module()
class LoadAnnotations3D:
    """Load per-point masks and/or 3D boxes named by the info.

    Semantic masks (``pts_semantic_mask_path``, int64 raw ids) are mapped to train ids with the dataset's
    ``seg_label_mapping`` (unknown ids -> 255). Boxes come from ``instances`` (``bbox_3d``,
    ``bbox_label_3d``, optional ``velocity``); labels < 0 are dropped. A NaN velocity (an annotation without a
    neighbour in time) stays NaN: the nuScenes metric skips it, as the devkit does, and :class:`CenterHead` gives
    its velocity targets no weight (zeroing it would teach and score "standing still").

    Adds ``pts_semantic_mask [N]``, ``pts_instance_mask [N]``, ``gt_bboxes_3d`` (Boxes3D), ``gt_labels_3d``
    (and ``num_lidar_pts`` / ``num_radar_pts`` / ``attr_labels`` when every instance has ``num_lidar_pts`` /
    ``num_radar_pts`` / ``attr_label``).
    """

    def __init__(self, with_seg=True, with_instance_mask=False, with_bbox_3d=False, with_velocity=False,
                 mask_dtype="int64"):
        self.with_seg, self.with_instance_mask = with_seg, with_instance_mask
        self.with_bbox_3d, self.with_velocity = with_bbox_3d, with_velocity
        self.mask_dtype = np.dtype(mask_dtype)

    def _load_mask(self, results, key):
        path = results.get(key + "_path")
        if not path:
            raise KeyError(f"LoadAnnotations3D: sample {results.get('sample_idx')} has no {key}_path; "
                           f"set with_seg/with_instance_mask=False for unlabelled data")
        mask = read_bin(path, self.mask_dtype, 1, what=f"{key} file").astype(np.int64)
        if "num_points" in results and len(mask) != results["num_points"]:
            raise ValueError(f"{key} file {path}: {len(mask)} labels for {results['num_points']} points in "
                             f"{results['lidar_path']}")
        return mask, path

    def __call__(self, results: dict) -> dict:
        if self.with_seg:
            raw, path = self._load_mask(results, "pts_semantic_mask")
            results["pts_semantic_mask"] = apply_label_mapping(raw, results["seg_label_mapping"],
                                                               f"semantic mask {path}")
        if self.with_instance_mask:
            results["pts_instance_mask"] = self._load_mask(results, "pts_instance_mask")[0]
        if self.with_bbox_3d:
            instances = results.get("instances", [])
            boxes = np.array([inst["bbox_3d"] for inst in instances], dtype=np.float64).reshape(len(instances), -1)
            labels = np.array([inst["bbox_label_3d"] for inst in instances], dtype=np.int64)
            if boxes.shape[1] == 6:  # axis-aligned indoor boxes (cx, cy, cz, dx, dy, dz): yaw = 0
                boxes = np.concatenate([boxes, np.zeros((len(boxes), 1))], 1)
            if self.with_velocity:
                velo = np.array([inst.get("velocity", [np.nan, np.nan]) for inst in instances],
                                dtype=np.float64).reshape(-1, 2)
                boxes = np.concatenate([boxes, velo], 1)
            keep = labels >= 0
            try:
                results["gt_bboxes_3d"] = Boxes3D(boxes[keep], with_velocity=self.with_velocity)
            except ValueError as err:
                raise ValueError(f"LoadAnnotations3D: sample {results.get('token', results.get('sample_idx'))}: "
                                 f"instances[].bbox_3d: {err}") from None
            results["gt_labels_3d"] = labels[keep]
            for key, out in (("num_lidar_pts", "num_lidar_pts"), ("num_radar_pts", "num_radar_pts"),
                             ("attr_label", "attr_labels")):
                if instances and all(key in inst for inst in instances):
                    results[out] = np.array([inst[key] for inst in instances], dtype=np.int64)[keep]
        return results
