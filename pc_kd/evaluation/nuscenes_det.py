"""nuScenes detection scores (mAP, TP errors, NDS) over any subset of the 10 classes, by the devkit's own
per-class ``accumulate`` / ``calc_ap`` / ``calc_tp`` (its ``DetectionConfig`` insists on all 10 classes, so
the aggregation over the classes present is done here, with the devkit's rules)."""
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

TP_METRICS = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")
TP_NAMES = {"trans_err": "mATE", "scale_err": "mASE", "orient_err": "mAOE", "vel_err": "mAVE", "attr_err": "mAAE"}
# TP errors the devkit does not score for a class (no orientation / velocity / attributes defined)
UNDEFINED_TP = {"traffic_cone": ("attr_err", "vel_err", "orient_err"), "barrier": ("attr_err", "vel_err")}
# the devkit's detection_cvpr_2019 class ranges (metres from the ego vehicle, in the x-y plane)
CLASS_RANGE = {"car": 50, "truck": 50, "bus": 50, "trailer": 50, "construction_vehicle": 50, "pedestrian": 40,
               "motorcycle": 40, "bicycle": 40, "traffic_cone": 30, "barrier": 30}
BOX_FIELDS = ("translation", "size", "rotation", "velocity", "detection_name")


def _eval_boxes(boxes: Mapping[str, Sequence[dict]], what: str, classes: Sequence[str],
                class_range: Mapping[str, float], is_gt: bool):
    """Results-JSON style dicts -> the devkit's ``EvalBoxes``, class-range filtered (and GT without points
    dropped, as the devkit's ``filter_eval_boxes``)."""
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
            numbers = [*b["translation"], *b["rotation"], *b["velocity"], b.get("detection_score", -1.0)]
            if not np.isfinite(np.asarray(numbers, dtype=float)).all():
                raise ValueError(f"nuscenes_detection_scores: {what}[{token!r}][{i}] has NaN / inf in "
                                 f"translation, rotation, velocity or detection_score")
            box = DetectionBox(sample_token=token, translation=tuple(b["translation"]), size=tuple(size),
                               rotation=tuple(b["rotation"]), velocity=tuple(b["velocity"][:2]),
                               ego_translation=tuple(b.get("ego_translation", b["translation"])),
                               num_pts=int(b.get("num_pts", -1)), detection_name=name,
                               detection_score=float(b.get("detection_score", -1.0)),
                               attribute_name=b.get("attribute_name", ""))
            if box.ego_dist >= class_range[name] or (is_gt and box.num_pts == 0):
                continue
            kept.append(box)
        out.add_boxes(token, kept)
    return out


def nuscenes_detection_scores(gt_boxes: Mapping[str, Sequence[dict]], pred_boxes: Mapping[str, Sequence[dict]],
                              classes: Iterable[str], class_range: Optional[Mapping[str, float]] = None,
                              dist_ths: Sequence[float] = (0.5, 1.0, 2.0, 4.0), dist_th_tp: float = 2.0,
                              min_recall: float = 0.1, min_precision: float = 0.1,
                              mean_ap_weight: float = 5.0) -> Dict[str, object]:
    """Score detections the nuScenes way over ``classes`` (a subset of the 10 detection classes).

    Args:
        gt_boxes / pred_boxes: ``{sample_token: [box, ...]}`` with boxes as in the official results JSON, in
            the global frame: ``translation`` (x, y, z) m, ``size`` (w, l, h) m, ``rotation`` quaternion
            (w, x, y, z), ``velocity`` (vx, vy) m/s, ``detection_name``, ``detection_score`` (predictions),
            ``attribute_name``; plus ``ego_translation`` (box centre minus ego position, for the class-range
            filter; default: ``translation``) and, for GT, ``num_pts`` (0 = dropped, as the devkit). Every
            GT sample token must appear in the predictions (an empty list is fine).
        class_range: metres per class (default: the devkit's detection_cvpr_2019 ranges).
        dist_ths, dist_th_tp, min_recall, min_precision, mean_ap_weight: the devkit's detection config.

    Returns:
        ``mAP``, ``NDS``, ``mATE`` ... ``mAAE``, ``AP`` ({class: {dist_th: ap}}), ``tp_errors``
        ({class: {metric: error}}, NaN where the devkit leaves it undefined), ``classes`` (those scored).
        Means run over the classes of ``classes`` with at least one GT box after filtering (the devkit's
        ``DetectionMetrics`` rules otherwise: NaN-mean TP errors, scores ``max(0, 1 - error)``,
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
    gts = _eval_boxes(gt_boxes, "gt_boxes", classes, class_range, is_gt=True)
    preds = _eval_boxes({t: pred_boxes[t] for t in gt_boxes}, "pred_boxes", classes, class_range, is_gt=False)
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
