"""nuScenes detection scores (mAP, TP errors, NDS) over any subset of the 10 classes, by the devkit's own
per-class ``accumulate`` / ``calc_ap`` / ``calc_tp`` (its ``DetectionConfig`` insists on all 10 classes, so
the aggregation over the classes present is done here, with the devkit's rules)."""
import json
import time
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from pc_kd.registry import METRICS
from pc_kd.structures.class_names import NUSCENES_ATTRIBUTES
from pc_kd.utils.io import atomic_write

TP_METRICS = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")
TP_NAMES = {"trans_err": "mATE", "scale_err": "mASE", "orient_err": "mAOE", "vel_err": "mAVE", "attr_err": "mAAE"}
# TP errors the devkit does not score for a class (no orientation / velocity / attributes defined)
UNDEFINED_TP = {"traffic_cone": ("attr_err", "vel_err", "orient_err"), "barrier": ("attr_err", "vel_err")}
# the devkit's detection_cvpr_2019 class ranges (metres from the ego vehicle, in the x-y plane)
CLASS_RANGE = {"car": 50, "truck": 50, "bus": 50, "trailer": 50, "construction_vehicle": 50, "pedestrian": 40,
               "motorcycle": 40, "bicycle": 40, "traffic_cone": 30, "barrier": 30}
BOX_FIELDS = ("translation", "size", "rotation", "velocity", "detection_name")
VEHICLES = ("car", "construction_vehicle", "bus", "truck", "trailer")
# the attribute a class gets when the speed rule says nothing else (as mmdet3d's nuScenes metric)
DEFAULT_ATTRIBUTE = {"car": "vehicle.parked", "pedestrian": "pedestrian.moving", "trailer": "vehicle.parked",
                     "truck": "vehicle.parked", "bus": "vehicle.moving", "motorcycle": "cycle.without_rider",
                     "construction_vehicle": "vehicle.parked", "bicycle": "cycle.without_rider", "barrier": "",
                     "traffic_cone": ""}


def attribute_from_speed(name: str, speed: float, moving: float = 0.2) -> str:
    """The nuScenes attribute of a predicted box from its speed (m/s): above ``moving`` vehicles are
    ``vehicle.moving`` and cycles ``cycle.with_rider``; at or below it pedestrians are ``pedestrian.standing``
    and buses ``vehicle.stopped``; otherwise the class default (cones and barriers have none)."""
    if speed > moving:
        if name in VEHICLES:
            return "vehicle.moving"
        if name in ("bicycle", "motorcycle"):
            return "cycle.with_rider"
    else:
        if name == "pedestrian":
            return "pedestrian.standing"
        if name == "bus":
            return "vehicle.stopped"
    return DEFAULT_ATTRIBUTE[name]


def attribute_names(attr_labels: Iterable[int]) -> List[str]:
    """nuScenes attribute names of ``attr_labels`` (indices into NUSCENES_ATTRIBUTES; -1, or mmdet3d's 8 for
    'None', -> '', no attribute)."""
    return [NUSCENES_ATTRIBUTES[a] if 0 <= a < len(NUSCENES_ATTRIBUTES) else "" for a in attr_labels]


def lidar_boxes_to_results(sample_token: str, boxes, labels, classes: Sequence[str], lidar2ego, ego2global,
                           scores=None, num_pts=None, attributes: Optional[Sequence[str]] = None) -> List[dict]:
    """Boxes of one sample in the LiDAR frame -> results-JSON dicts in the global frame.

    Args:
        boxes: ``pc_kd.structures.Boxes3D`` ``[N, 7 or 9]`` (x, y, z geometric centre, l, w, h, yaw, vx, vy),
            LiDAR frame.
        labels: ``[N]`` indices into ``classes`` (nuScenes detection names).
        lidar2ego, ego2global: ``[4, 4]``.
        scores: ``[N]`` (predictions) or None (GT: score -1).
        num_pts: ``[N]`` LiDAR points per GT box (None for predictions).
        attributes: per box; default: :func:`attribute_from_speed` of the global velocity.

    Returns:
        dicts with ``translation``, ``size`` (w, l, h), ``rotation`` (yaw quaternion w, x, y, z),
        ``velocity`` (global vx, vy), ``ego_translation`` (centre minus ego position, global axes),
        ``detection_name``, ``detection_score``, ``attribute_name`` (+ ``num_pts``).
    """
    lidar2ego, ego2global = np.asarray(lidar2ego, dtype=np.float64), np.asarray(ego2global, dtype=np.float64)
    world = boxes.transform(ego2global @ lidar2ego).tensor.double().cpu().numpy()
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(world):
        raise ValueError(f"lidar_boxes_to_results: {sample_token}: {len(world)} boxes but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"lidar_boxes_to_results: {sample_token}: labels must be in [0, {len(classes)}), got "
                         f"{labels.min()}..{labels.max()}")
    out = []
    for i, (x, y, z, length, width, height, yaw, *vel) in enumerate(world.tolist()):
        name = classes[int(labels[i])]
        velocity = [vel[0], vel[1]] if vel else [0.0, 0.0]
        box = dict(sample_token=sample_token, translation=[x, y, z], size=[width, length, height],
                   rotation=[float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))], velocity=velocity,
                   ego_translation=[x - ego2global[0, 3], y - ego2global[1, 3], z - ego2global[2, 3]],
                   detection_name=name, detection_score=-1.0 if scores is None else float(scores[i]),
                   attribute_name=(attributes[i] if attributes is not None
                                   else attribute_from_speed(name, float(np.hypot(*velocity)))))
        if num_pts is not None:
            box["num_pts"] = int(num_pts[i])
        out.append(box)
    return out


def in_a_bike_rack(center: Sequence[float], racks: Sequence[dict]) -> bool:
    """Whether a box centre (global x, y, z) lies inside any of ``racks`` (``translation``, ``size`` (w, l, h),
    ``rotation`` quaternion w, x, y, z; faces included), as the devkit's ``points_in_box`` tests it."""
    from pyquaternion import Quaternion

    for rack in racks:
        local = Quaternion(rack["rotation"]).rotation_matrix.T @ (np.asarray(center, np.float64)
                                                                  - np.asarray(rack["translation"], np.float64))
        w, length, h = rack["size"]
        if abs(local[0]) <= length / 2 and abs(local[1]) <= w / 2 and abs(local[2]) <= h / 2:
            return True
    return False


def _eval_boxes(boxes: Mapping[str, Sequence[dict]], what: str, classes: Sequence[str],
                class_range: Mapping[str, float], is_gt: bool, bike_racks: Optional[Mapping[str, Sequence]] = None):
    """Results-JSON style dicts -> the devkit's ``EvalBoxes``, filtered as the devkit's ``filter_eval_boxes``:
    class range, GT without points, bicycles and motorcycles inside a bike rack of ``bike_racks[token]``."""
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.detection.data_classes import DetectionBox

    out = EvalBoxes()
    for token, items in boxes.items():
        kept = []
        for i, b in enumerate(items):
            missing = [f for f in BOX_FIELDS if f not in b]
            if missing:
                raise KeyError(f"nuscenes_detection_scores: {what}[{token!r}][{i}] lacks {missing}")
            name = b["detection_name"]
            if name not in classes:
                continue
            size = np.asarray(b["size"], dtype=float)
            if size.shape != (3,) or not (size > 0).all():
                raise ValueError(f"nuscenes_detection_scores: {what}[{token!r}][{i}].size must be 3 positive "
                                 f"(w, l, h), got {b['size']}")
            # GT velocities may be NaN (an annotation without neighbours in time; the devkit skips them)
            numbers = [*b["translation"], *b["rotation"], b.get("detection_score", -1.0),
                       *([] if is_gt else b["velocity"])]
            if not np.isfinite(np.asarray(numbers, dtype=float)).all():
                raise ValueError(f"nuscenes_detection_scores: {what}[{token!r}][{i}] has NaN / inf in "
                                 f"translation, rotation, {'' if is_gt else 'velocity, '}detection_score")
            box = DetectionBox(sample_token=token, translation=tuple(b["translation"]), size=tuple(size),
                               rotation=tuple(b["rotation"]), velocity=tuple(b["velocity"][:2]),
                               ego_translation=tuple(b.get("ego_translation", b["translation"])),
                               num_pts=int(b.get("num_pts", -1)), detection_name=name,
                               detection_score=float(b.get("detection_score", -1.0)),
                               attribute_name=b.get("attribute_name", ""))
            if box.ego_dist >= class_range[name] or (is_gt and box.num_pts == 0):
                continue
            if (bike_racks and name in ("bicycle", "motorcycle")
                    and in_a_bike_rack(box.translation, bike_racks.get(token, ()))):
                continue
            kept.append(box)
        out.add_boxes(token, kept)
    return out


def nuscenes_detection_scores(gt_boxes: Mapping[str, Sequence[dict]], pred_boxes: Mapping[str, Sequence[dict]],
                              classes: Iterable[str], class_range: Optional[Mapping[str, float]] = None,
                              dist_ths: Sequence[float] = (0.5, 1.0, 2.0, 4.0), dist_th_tp: float = 2.0,
                              min_recall: float = 0.1, min_precision: float = 0.1,
                              mean_ap_weight: float = 5.0, bike_racks: Optional[Mapping[str, Sequence]] = None,
                              skip_absent_classes: bool = True) -> Dict[str, object]:
    """Score detections the nuScenes way over ``classes`` (a subset of the 10 detection classes).

    Args:
        gt_boxes / pred_boxes: ``{sample_token: [box, ...]}`` with boxes as in the official results JSON, in
            the global frame: ``translation`` (x, y, z) m, ``size`` (w, l, h) m, ``rotation`` quaternion
            (w, x, y, z), ``velocity`` (vx, vy) m/s, ``detection_name``, ``detection_score`` (predictions),
            ``attribute_name``; plus ``ego_translation`` (box centre minus ego position, for the class-range
            filter; default: ``translation``) and, for GT, ``num_pts`` (LiDAR + radar points; 0 = dropped, as
            the devkit) and a ``velocity`` that may be NaN (skipped by the NaN-aware means, as the devkit). Every
            GT sample token must appear in the predictions (an empty list is fine).
        class_range: metres per class (default: the devkit's detection_cvpr_2019 ranges).
        dist_ths, dist_th_tp, min_recall, min_precision, mean_ap_weight: the devkit's detection config.
        bike_racks: ``{sample_token: [rack, ...]}`` (``translation``, ``size``, ``rotation``, global frame): GT and
            predicted bicycles and motorcycles whose centre lies inside a rack are dropped, as the devkit does
            with the ``static_object.bicycle_rack`` annotations (:mod:`pc_kd.evaluation.nuscenes_tables` reads
            them from the tables). None: no such filter.
        skip_absent_classes: True: the means run over the classes with GT left after filtering (for class
            subsets and small synthetic splits); False: over every class of ``classes``, a class without GT
            scoring AP 0 and TP errors 1, as the devkit's ``DetectionEval`` scores its 10 classes.

    Returns:
        ``mAP``, ``NDS``, ``mATE`` ... ``mAAE``, ``AP`` ({class: {dist_th: ap}}), ``tp_errors``
        ({class: {metric: error}}, NaN where the devkit leaves it undefined), ``classes`` (those scored).
        Means run over the classes ``skip_absent_classes`` says (the devkit's ``DetectionMetrics`` rules
        otherwise: NaN-mean TP errors, scores ``max(0, 1 - error)``,
        NDS = (``mean_ap_weight`` mAP + sum of TP scores) / (``mean_ap_weight`` + number of TP scores); a TP
        metric undefined for every scored class, e.g. mAOE with traffic cones only, is left out of NDS).
    """
    from nuscenes.eval.common.utils import center_distance
    from nuscenes.eval.detection.algo import accumulate, calc_ap, calc_tp

    classes = list(classes)
    unknown = [c for c in classes if c not in CLASS_RANGE]
    if unknown:
        raise ValueError(f"nuscenes_detection_scores: unknown classes {unknown}; nuScenes detection classes are "
                         f"{list(CLASS_RANGE)}")
    missing = sorted(set(gt_boxes) - set(pred_boxes))
    if missing:
        raise KeyError(f"nuscenes_detection_scores: {len(missing)} GT samples have no prediction entry, e.g. "
                       f"{missing[:3]} (give them an empty list)")
    class_range = {**CLASS_RANGE, **(class_range or {})}
    gts = _eval_boxes(gt_boxes, "gt_boxes", classes, class_range, True, bike_racks)
    preds = _eval_boxes({t: pred_boxes[t] for t in gt_boxes}, "pred_boxes", classes, class_range, False, bike_racks)
    if skip_absent_classes:
        classes = [c for c in classes if any(b.detection_name == c for t in gts.sample_tokens for b in gts[t])]
    if not classes:
        raise ValueError("nuscenes_detection_scores: no GT box of the requested classes is left after the "
                         "class-range / zero-point filter")
    aps: Dict[str, Dict[float, float]] = {}
    tp_errors: Dict[str, Dict[str, float]] = {}
    for name in classes:
        curves = {th: accumulate(gts, preds, name, center_distance, th) for th in dist_ths}
        aps[name] = {th: calc_ap(curves[th], min_recall, min_precision) for th in dist_ths}
        tp_errors[name] = {m: (float("nan") if m in UNDEFINED_TP.get(name, ())
                               else calc_tp(curves[dist_th_tp], min_recall, m)) for m in TP_METRICS}
    mean_ap = float(np.mean([np.mean(list(v.values())) for v in aps.values()]))
    errors = {m: float(np.nanmean([tp_errors[c][m] for c in classes]))
              if not all(np.isnan(tp_errors[c][m]) for c in classes) else float("nan") for m in TP_METRICS}
    scores: List[float] = [max(0.0, 1.0 - e) for e in errors.values() if not np.isnan(e)]
    nds = (mean_ap_weight * mean_ap + sum(scores)) / (mean_ap_weight + len(scores))
    out: Dict[str, object] = {"mAP": mean_ap, "NDS": float(nds), "AP": aps, "tp_errors": tp_errors,
                              "classes": classes}
    out.update({TP_NAMES[m]: e for m, e in errors.items()})
    return out


def results_json(results: Mapping[str, Sequence[dict]], use_lidar: bool, use_camera: bool) -> dict:
    """The official nuScenes detection submission: ``{"meta": ..., "results": {token: [box, ...]}}``."""
    keys = ("sample_token", "translation", "size", "rotation", "velocity", "detection_name", "detection_score",
            "attribute_name")
    return {"meta": dict(use_camera=use_camera, use_lidar=use_lidar, use_radar=False, use_map=False,
                         use_external=False),
            "results": {token: [{k: b[k] for k in keys} for b in boxes] for token, boxes in results.items()}}


@METRICS.register_module()
class NuScenesDetMetric(BaseMetric):
    """nuScenes detection metric of a Runner's val / test loop (mAP, mATE..mAAE, NDS over the classes present).

    Reads, per data sample: metainfo ``token``, ``lidar2ego`` and ``ego2global`` (4x4), ``pred_instances_3d``
    (``bboxes_3d`` Boxes3D in the LiDAR frame, ``scores_3d``, ``labels_3d``) and ``gt_instances_3d``
    (``bboxes_3d``, ``labels_3d``, optional ``num_lidar_pts`` and ``num_radar_pts``, GT with 0 points in both
    are not scored, and optional ``attr_labels``, indices into NUSCENES_ATTRIBUTES, -1 = none; without them GT
    attributes follow the speed rule too). Boxes go to the global frame by :func:`lidar_boxes_to_results`,
    attributes of predictions by the 0.2 m/s rule.

    Args:
        classes: scored class names (default: the dataset's ``classes``), nuScenes detection names.
        class_range: metres per class (default: the devkit's).
        jsonfile_prefix: if set, the official results JSON is written to ``<prefix>/results_nusc.json``.
        use_lidar / use_camera: the JSON's ``meta``.
        tables_root, tables_version: with real nuScenes, the folder holding the devkit's tables
            (``<tables_root>/<tables_version>/sample.json`` ...): the GT of the scored samples then comes from the
            tables as the devkit's ``DetectionEval`` reads it (:mod:`pc_kd.evaluation.nuscenes_tables`: the
            bike-rack filter, which the samples cannot carry, included) and every class of ``classes`` counts in
            the means, with or without GT, as in the devkit. None: GT from the samples, means over the classes
            with GT (synthetic data, class subsets).
    """

    default_prefix = "nuscenes"

    def __init__(self, classes: Optional[Sequence[str]] = None, class_range: Optional[Mapping[str, float]] = None,
                 jsonfile_prefix: Optional[str] = None, use_lidar: bool = True, use_camera: bool = False,
                 tables_root: Optional[str] = None, tables_version: str = "v1.0-trainval",
                 collect_device: str = "cpu", prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.classes, self.class_range = classes, class_range
        self.tables_root, self.tables_version = tables_root, tables_version
        if tables_root and not (Path(tables_root) / tables_version / "sample.json").is_file():
            raise FileNotFoundError(
                f"NuScenesDetMetric: tables_root {tables_root!r} has no {tables_version}/sample.json (the devkit's "
                f"tables, which give the GT as the devkit scores it); point tables_root / tables_version at them, "
                f"or set tables_root=None to score against the samples' own GT (no bike-rack filter)")
        self.jsonfile_prefix, self.use_lidar, self.use_camera = jsonfile_prefix, use_lidar, use_camera

    def process(self, data_batch, data_samples: Sequence) -> None:
        classes = list(self.dataset_meta["classes"])
        for sample in data_samples:
            token = sample["token"]
            for field in ("lidar2ego", "ego2global", "pred_instances_3d", "gt_instances_3d"):
                if field not in sample:
                    raise KeyError(f"NuScenesDetMetric: sample {token} has no {field!r}")
            pred, gt = sample["pred_instances_3d"], sample["gt_instances_3d"]
            pts, attrs = gt.get("num_lidar_pts"), gt.get("attr_labels")
            if pts is not None and gt.get("num_radar_pts") is not None:  # the devkit's filter: LiDAR + radar
                pts = _numpy(pts) + _numpy(gt["num_radar_pts"])
            if attrs is not None:
                attrs = attribute_names(_numpy(attrs).tolist())
            self.results.append((
                token,
                lidar_boxes_to_results(token, gt["bboxes_3d"], _numpy(gt["labels_3d"]), classes, sample["lidar2ego"],
                                       sample["ego2global"], num_pts=None if pts is None else _numpy(pts),
                                       attributes=attrs),
                lidar_boxes_to_results(token, pred["bboxes_3d"], _numpy(pred["labels_3d"]), classes,
                                       sample["lidar2ego"], sample["ego2global"], scores=_numpy(pred["scores_3d"]))))

    def compute_metrics(self, results: list) -> dict:
        start = time.perf_counter()
        gts = {token: g for token, g, _ in results}
        preds = {token: p for token, _, p in results}
        if self.jsonfile_prefix:
            path = Path(self.jsonfile_prefix) / "results_nusc.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as tmp:
                Path(tmp).write_text(json.dumps(results_json(preds, self.use_lidar, self.use_camera)))
            MMLogger.get_current_instance().info(f"nuScenes results JSON: {path}")
        classes, racks = self.classes or self.dataset_meta["classes"], None
        if self.tables_root:
            from pc_kd.evaluation.nuscenes_tables import gt_from_tables, open_tables

            gts, racks, _ = gt_from_tables(open_tables(self.tables_root, self.tables_version), list(gts))
        scores = nuscenes_detection_scores(gts, preds, classes, self.class_range, bike_racks=racks,
                                           skip_absent_classes=not self.tables_root)
        out = {k: scores[k] for k in ("mAP", "NDS", *TP_NAMES.values())}
        out.update({f"AP_{name}": float(np.mean(list(v.values()))) for name, v in scores["AP"].items()})
        head = f"  {'class':<22s} {'AP':>6s} " + " ".join(f"{TP_NAMES[m][1:]:>6s}" for m in TP_METRICS)
        table = "\n".join([head] + [f"  {name:<22s} {np.mean(list(v.values())):6.4f} "
                                     + " ".join(f"{scores['tp_errors'][name][m]:6.4f}" for m in TP_METRICS)
                                     for name, v in scores["AP"].items()])
        MMLogger.get_current_instance().info(
            f"nuScenes detection ({len(gts)} samples, scored in {time.perf_counter() - start:.2f} s):\n{table}\n  mAP {out['mAP']:.4f}  NDS {out['NDS']:.4f}  "
            + "  ".join(f"{k} {out[k]:.4f}" for k in TP_NAMES.values()))
        return out


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
