"""The nuScenes detection metric on the devkit's own tables: ground truth, bike racks and predictions read as the
devkit's ``DetectionEval`` reads them, the devkit's summary (``metrics_summary.json`` keys and its printed
layout), and a run of ``DetectionEval`` itself on the same boxes for comparison.

Ground truth (``nuscenes.eval.common.loaders.load_gt``): every annotation of a detection class, in the global
frame, ``size`` (w, l, h) and ``rotation`` as the table has them, ``velocity`` from ``box_velocity`` (NaN where the
annotation has no neighbour in time: the devkit's NaN-aware means skip it), ``num_pts = num_lidar_pts +
num_radar_pts`` (0: not scored), its one attribute (or ''). ``ego_translation`` is the box centre minus the ego
position at the key frame's LIDAR_TOP time (``add_center_dist``). Bike racks are the
``static_object.bicycle_rack`` annotations of each sample (``filter_eval_boxes`` drops bicycle and motorcycle
boxes, GT and predictions, whose centre lies inside one).
"""
import json
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from pc_kd.evaluation.nuscenes_det import CLASS_RANGE, TP_METRICS, TP_NAMES, nuscenes_detection_scores

__all__ = ["open_tables", "scene_samples", "gt_from_tables", "load_results", "score_results", "metrics_summary",
           "format_summary", "eval_split_of", "write_table_subset", "devkit_eval", "largest_difference"]

DETECTION_CLASSES = tuple(CLASS_RANGE)  # the devkit's order: car ... barrier
BIKE_RACK = "static_object.bicycle_rack"
MAX_BOXES_PER_SAMPLE = 500  # the devkit's detection_cvpr_2019 limit
ATTRIBUTE_NAMES = ("cycle.with_rider", "cycle.without_rider", "pedestrian.moving", "pedestrian.standing",
                   "pedestrian.sitting_lying_down", "vehicle.moving", "vehicle.parked", "vehicle.stopped")


def open_tables(root, version: str):
    """The devkit's ``NuScenes`` over ``root/version`` (its JSON tables; no sample file is read)."""
    from nuscenes import NuScenes

    root = Path(root)
    if not (root / version / "sample.json").is_file():
        raise FileNotFoundError(f"{root / version / 'sample.json'} not found: --root must be the folder that holds "
                                f"{version}/ (the nuScenes tables, e.g. sample.json, sample_annotation.json)")
    return NuScenes(version=version, dataroot=str(root), verbose=False)


def scene_samples(nusc, scenes: Optional[Sequence[str]] = None, samples: Optional[Sequence[str]] = None) -> List[str]:
    """Sample tokens of the named scenes (all scenes of the tables when None), in the tables' order; only those in
    ``samples`` when given (each must be in the tables)."""
    names = {s["name"] for s in nusc.scene}
    unknown = sorted(set(scenes or ()) - names)
    if unknown:
        raise ValueError(f"scenes {unknown} are not in the tables ({nusc.dataroot}/{nusc.version}); they hold "
                         f"{sorted(names)}")
    keep = {s["token"] for s in nusc.scene if scenes is None or s["name"] in scenes}
    tokens = [s["token"] for s in nusc.sample if s["scene_token"] in keep]
    if samples is None:
        return tokens
    unknown = sorted(set(samples) - {s["token"] for s in nusc.sample})
    if unknown:
        raise ValueError(f"samples {unknown[:3]} are not in the tables ({nusc.dataroot}/{nusc.version})")
    return [t for t in tokens if t in set(samples)]


def _ego_position(nusc, sample_token: str) -> np.ndarray:
    sample = nusc.get("sample", sample_token)
    pose = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])
    return np.asarray(pose["translation"], dtype=np.float64)


def gt_from_tables(nusc, sample_tokens: Sequence[str]) -> Tuple[Dict[str, List[dict]], Dict[str, List[dict]],
                                                                Dict[str, np.ndarray]]:
    """``(gt_boxes, bike_racks, ego_positions)`` of ``sample_tokens``: results-JSON style GT boxes (see the module
    docstring), the bike-rack boxes (``translation``, ``size``, ``rotation``) and the ego position per sample."""
    from nuscenes.eval.detection.utils import category_to_detection_name

    attributes = {a["token"]: a["name"] for a in nusc.attribute}
    gts, racks, egos = {}, {}, {}
    for token in sample_tokens:
        ego = egos[token] = _ego_position(nusc, token)
        gts[token], racks[token] = [], []
        for ann_token in nusc.get("sample", token)["anns"]:
            ann = nusc.get("sample_annotation", ann_token)
            if ann["category_name"] == BIKE_RACK:
                racks[token].append({k: list(ann[k]) for k in ("translation", "size", "rotation")})
            name = category_to_detection_name(ann["category_name"])
            if name is None:
                continue
            if len(ann["attribute_tokens"]) > 1:
                raise ValueError(f"sample_annotation {ann_token}: {len(ann['attribute_tokens'])} attributes; the "
                                 f"detection metric takes at most one")
            gts[token].append(dict(
                sample_token=token, translation=list(ann["translation"]), size=list(ann["size"]),
                rotation=list(ann["rotation"]), velocity=nusc.box_velocity(ann_token)[:2].tolist(),
                ego_translation=(np.asarray(ann["translation"]) - ego).tolist(),
                num_pts=int(ann["num_lidar_pts"] + ann["num_radar_pts"]), detection_name=name, detection_score=-1.0,
                attribute_name=attributes[ann["attribute_tokens"][0]] if ann["attribute_tokens"] else ""))
    return gts, racks, egos


def load_results(path, sample_tokens: Sequence[str], ego_positions: Mapping[str, np.ndarray]
                 ) -> Dict[str, List[dict]]:
    """The boxes of a nuScenes results JSON (``{"meta": ..., "results": {sample_token: [box, ...]}}``) for
    ``sample_tokens``, each given its ``ego_translation``; every sample must be there (an empty list is fine), at
    most 500 boxes each, with the devkit's fields, names and attributes. Samples of other scenes are ignored."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such results file") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or "meta" not in data:
        keys = list(data)[:5] if isinstance(data, dict) else "-"
        raise ValueError(f"{path}: a nuScenes results file is {{\"meta\": {{...}}, \"results\": {{sample_token: "
                         f"[box, ...]}}}}; found {type(data).__name__} with keys {keys}")
    results = data["results"]
    missing = [t for t in sample_tokens if t not in results]
    if missing:
        raise ValueError(f"{path}: results has no entry for {len(missing)} of the {len(sample_tokens)} samples "
                         f"scored, e.g. {missing[:2]} (give a sample without detections an empty list)")
    fields = {"translation": 3, "size": 3, "rotation": 4, "velocity": 2}
    out = {}
    for token in sample_tokens:
        boxes = results[token]
        if len(boxes) > MAX_BOXES_PER_SAMPLE:
            raise ValueError(f"{path}: results[{token!r}] has {len(boxes)} boxes; the metric takes at most "
                             f"{MAX_BOXES_PER_SAMPLE} per sample (keep the highest scores)")
        out[token] = []
        for i, box in enumerate(boxes):
            where = f"{path}: results[{token!r}][{i}]"
            for key, n in fields.items():
                value = np.asarray(box.get(key, []), dtype=np.float64)
                if value.shape != (n,) or not np.isfinite(value).all():
                    raise ValueError(f"{where}.{key} must be {n} finite numbers, got {box.get(key)!r}")
            if box.get("detection_name") not in DETECTION_CLASSES:
                raise ValueError(f"{where}.detection_name {box.get('detection_name')!r} is not one of "
                                 f"{list(DETECTION_CLASSES)}")
            if box.get("attribute_name", "") not in ("", *ATTRIBUTE_NAMES):
                raise ValueError(f"{where}.attribute_name {box.get('attribute_name')!r} is not '' or one of "
                                 f"{list(ATTRIBUTE_NAMES)}")
            if not np.isfinite(float(box.get("detection_score", np.nan))):
                raise ValueError(f"{where}.detection_score must be a finite number, got {box.get('detection_score')!r}")
            out[token].append(dict(box, sample_token=token, ego_translation=(
                np.asarray(box["translation"], dtype=np.float64) - ego_positions[token]).tolist()))
    return out


def score_results(nusc, results_path, scenes: Optional[Sequence[str]] = None,
                  samples: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """pc_kd's nuScenes detection scores of a results JSON against the tables' GT of ``scenes`` (all when None;
    only the sample tokens ``samples`` of them when given),
    with the devkit's rules: all 10 classes (a class without GT scores AP 0 and TP errors 1), the class ranges,
    the LiDAR + radar points filter and the bike-rack filter. Returns :func:`nuscenes_detection_scores`'s dict."""
    tokens = scene_samples(nusc, scenes, samples)
    gts, racks, egos = gt_from_tables(nusc, tokens)
    preds = load_results(results_path, tokens, egos)
    return nuscenes_detection_scores(gts, preds, DETECTION_CLASSES, bike_racks=racks, skip_absent_classes=False)


def metrics_summary(scores: Mapping[str, object], mean_ap_weight: float = 5.0) -> dict:
    """The devkit's ``metrics_summary.json`` keys of :func:`nuscenes_detection_scores`'s output: ``label_aps``
    ({class: {dist_th: ap}}), ``mean_dist_aps``, ``mean_ap``, ``label_tp_errors``, ``tp_errors``, ``tp_scores``,
    ``nd_score`` (NaN where the devkit's JSON has NaN)."""
    aps = {c: {str(th): float(v) for th, v in per.items()} for c, per in scores["AP"].items()}
    tp_errors = {m: float(scores[TP_NAMES[m]]) for m in TP_METRICS}
    return dict(label_aps=aps, mean_dist_aps={c: float(np.mean(list(v.values()))) for c, v in aps.items()},
                mean_ap=float(scores["mAP"]),
                label_tp_errors={c: {m: float(v) for m, v in e.items()} for c, e in scores["tp_errors"].items()},
                tp_errors=tp_errors, tp_scores={m: max(0.0, 1.0 - e) for m, e in tp_errors.items()},
                nd_score=float(scores["NDS"]))


def format_summary(summary: Mapping[str, object]) -> str:
    """The devkit's printed summary (``DetectionEval.main``): the means, NDS, then the per-class table."""
    lines = [f"mAP: {summary['mean_ap']:.4f}"]
    lines += [f"{TP_NAMES[m]}: {summary['tp_errors'][m]:.4f}" for m in TP_METRICS]
    lines += [f"NDS: {summary['nd_score']:.4f}", "", "Per-class results:",
              "Object Class\tAP\tATE\tASE\tAOE\tAVE\tAAE"]
    for name, ap in summary["mean_dist_aps"].items():
        errs = summary["label_tp_errors"][name]
        lines.append(f"{name}\t{ap:.3f}\t" + "\t".join(f"{errs[m]:.3f}" for m in TP_METRICS))
    return "\n".join(lines)


def eval_split_of(nusc, scenes: Optional[Sequence[str]] = None) -> str:
    """The devkit split (``train`` / ``val`` / ``mini_train`` / ``mini_val``) that holds every named scene (all
    scenes of the tables when None): what ``DetectionEval``'s ``eval_set`` must be."""
    from nuscenes.utils.splits import create_splits_scenes

    wanted = set(scenes or [s["name"] for s in nusc.scene])
    candidates = ("mini_val", "mini_train") if nusc.version.endswith("mini") else ("val", "train")
    splits = create_splits_scenes()
    for split in candidates:
        if wanted <= set(splits[split]):
            return split
    raise ValueError(f"no devkit split of {nusc.version} holds all of the scenes {sorted(wanted)}: "
                     f"DetectionEval scores one split at a time; pass --scenes from one split")


def write_table_subset(root, version: str, out_root, scenes: Sequence[str],
                       drop_categories: Sequence[str] = (), samples: Optional[Sequence[str]] = None) -> Path:
    """A copy of the tables under ``out_root/version`` that holds only ``scenes`` (their samples, annotations and
    sample data), without annotations of ``drop_categories``; the other tables are copied as they are. The devkit
    evaluates every sample of a split that its tables hold, so this is how it scores a few scenes.

    ``samples``: keep only these sample tokens of the scenes; links (``prev`` / ``next`` of samples and
    annotations) to what is left out are cut, so a velocity is taken from the kept neighbours only (for pc_kd's
    metric and the devkit alike: both read the copy)."""
    src, dst = Path(root) / version, Path(out_root) / version
    dst.mkdir(parents=True, exist_ok=True)
    tables = {p.stem: p for p in src.glob("*.json")}
    scene = [s for s in json.loads(tables["scene"].read_text()) if s["name"] in set(scenes)]
    scene_tokens = {s["token"] for s in scene}
    sample = [s for s in json.loads(tables["sample"].read_text()) if s["scene_token"] in scene_tokens
              and (samples is None or s["token"] in set(samples))]
    sample_tokens = {s["token"] for s in sample}
    categories = {c["token"] for c in json.loads(tables["category"].read_text()) if c["name"] in set(drop_categories)}
    instances = {i["token"] for i in json.loads(tables["instance"].read_text()) if i["category_token"] in categories}
    kept = dict(scene=scene, sample=sample,
                sample_annotation=[a for a in json.loads(tables["sample_annotation"].read_text())
                                   if a["sample_token"] in sample_tokens and a["instance_token"] not in instances],
                sample_data=[d for d in json.loads(tables["sample_data"].read_text())
                             if d["sample_token"] in sample_tokens])
    if samples is not None:
        _cut_links(kept)
    for name, path in tables.items():
        if name in kept:
            (dst / path.name).write_text(json.dumps(kept[name]))
        else:
            shutil.copyfile(path, dst / path.name)
    return Path(out_root)


def _cut_links(kept: dict) -> None:
    """In a sample subset of the tables: ``prev`` / ``next`` of samples and annotations pointing at rows left out
    become '', and each scene's first / last sample and count follow the kept samples."""
    for table in ("sample", "sample_annotation"):
        tokens = {r["token"] for r in kept[table]}
        for row in kept[table]:
            for key in ("prev", "next"):
                if row[key] and row[key] not in tokens:
                    row[key] = ""
    for scene in kept["scene"]:
        rows = sorted((s for s in kept["sample"] if s["scene_token"] == scene["token"]), key=lambda s: s["timestamp"])
        scene.update(nbr_samples=len(rows), first_sample_token=rows[0]["token"] if rows else "",
                     last_sample_token=rows[-1]["token"] if rows else "")


def devkit_eval(root, version: str, results_path, scenes: Optional[Sequence[str]] = None,
                drop_categories: Sequence[str] = (), samples: Optional[Sequence[str]] = None) -> dict:
    """The devkit's own ``DetectionEval`` (detection_cvpr_2019) of a results JSON on the tables' scenes (all when
    None; a subset, ``samples`` of them, or ``drop_categories``, goes through :func:`write_table_subset`): its
    ``metrics_summary``. pc_kd's metric on the same copy (``open_tables`` of it) scores what this scores."""
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval

    nusc = open_tables(root, version)
    with tempfile.TemporaryDirectory(prefix="pc_kd_devkit_") as tmp:
        if scenes is not None or drop_categories or samples is not None:
            chosen = scenes or [s["name"] for s in nusc.scene]
            nusc = open_tables(write_table_subset(root, version, Path(tmp) / "tables", chosen, drop_categories,
                                                  samples), version)
        tokens = set(scene_samples(nusc))
        data = json.loads(Path(results_path).read_text())
        subset = dict(data, results={t: b for t, b in data["results"].items() if t in tokens})
        path = Path(tmp) / "results.json"
        path.write_text(json.dumps(subset))
        evaluation = DetectionEval(nusc, config_factory("detection_cvpr_2019"), str(path), eval_split_of(nusc),
                                   str(Path(tmp) / "out"), verbose=False)
        metrics, _ = evaluation.evaluate()
        return metrics.serialize()


def largest_difference(ours: dict, devkit: dict) -> float:
    """The largest absolute difference between two ``metrics_summary`` dicts over every number the devkit's has
    (mAP, NDS, TP errors, per-class APs per distance threshold and TP errors); NaN against NaN counts as 0, NaN
    against a number as infinity."""
    import math

    pairs = [(ours["mean_ap"], devkit["mean_ap"]), (ours["nd_score"], devkit["nd_score"])]
    pairs += [(ours["tp_errors"][m], v) for m, v in devkit["tp_errors"].items()]
    for name, per in devkit["label_aps"].items():
        pairs += [(ours["label_aps"][name][str(float(th))], v) for th, v in per.items()]
    for name, per in devkit["label_tp_errors"].items():
        pairs += [(ours["label_tp_errors"][name][m], v) for m, v in per.items()]

    def gap(a, b):
        if math.isnan(a) or math.isnan(b):
            return 0.0 if math.isnan(a) and math.isnan(b) else math.inf
        return abs(a - b)

    return max(gap(a, b) for a, b in pairs)
