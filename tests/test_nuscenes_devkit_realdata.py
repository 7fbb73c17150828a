"""pc_kd's nuScenes detection metric against the official devkit's ``DetectionEval``, end to end, on the REAL
tables of two nuScenes scenes (81 key frames; scene-0916 has a bicycle rack with parked bicycles): predictions made
from the GT (jittered centres, sizes, yaws, velocities, attributes and scores, some boxes missed), false positives,
and bicycles placed inside the rack. Every number of the devkit's metrics summary must agree to 1e-9."""
import json
import math

import numpy as np
import pytest

from pc_kd.evaluation.nuscenes_tables import (ATTRIBUTE_NAMES, BIKE_RACK, DETECTION_CLASSES, devkit_eval,
                                              gt_from_tables, metrics_summary, open_tables, score_results,
                                              write_table_subset)

pytestmark = pytest.mark.realdata
VERSION = "v1.0-trainval"


@pytest.fixture(scope="module")
def tables(real_data):
    root = real_data / "nuscenes_2scenes"
    return root, open_tables(root, VERSION)


def _quat_mul(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return [w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2]


def _predictions(nusc, seed=0):
    """Results JSON from the tables' GT: 85 % of the boxes kept with noise, 2 false positives per sample, and in
    every sample with a bike rack a confident bicycle at each rack's centre (a false positive unless filtered)."""
    rng = np.random.default_rng(seed)
    tokens = [s["token"] for s in nusc.sample]
    gts, racks, egos = gt_from_tables(nusc, tokens)
    results, in_racks = {}, 0
    for token in tokens:
        boxes = []
        for gt in gts[token]:
            if rng.uniform() > 0.85:
                continue
            velocity = np.nan_to_num(np.asarray(gt["velocity"]), nan=0.0) + rng.normal(0, 0.4, 2)
            attribute = gt["attribute_name"] if rng.uniform() < 0.8 else str(rng.choice(ATTRIBUTE_NAMES))
            if gt["detection_name"] in ("traffic_cone", "barrier"):
                attribute = ""
            yaw = rng.normal(0, 0.15)
            boxes.append(dict(sample_token=token, translation=list(np.asarray(gt["translation"])
                                                                   + rng.normal(0, [0.3, 0.3, 0.1])),
                              size=list(np.asarray(gt["size"]) * rng.uniform(0.85, 1.15, 3)),
                              rotation=_quat_mul([math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)], gt["rotation"]),
                              velocity=list(velocity), detection_name=gt["detection_name"],
                              detection_score=float(rng.uniform(0.05, 1.0)), attribute_name=attribute))
        for _ in range(2):
            name = str(rng.choice(DETECTION_CLASSES))
            boxes.append(dict(sample_token=token, translation=list(egos[token] + [*rng.uniform(-30, 30, 2), 0.5]),
                              size=[2.0, 4.0, 1.6], rotation=[1.0, 0.0, 0.0, 0.0], velocity=[0.0, 0.0],
                              detection_name=name, detection_score=float(rng.uniform(0.05, 1.0)),
                              attribute_name="" if name in ("traffic_cone", "barrier") else "vehicle.parked"))
        for rack in racks[token]:
            in_racks += 1
            boxes.append(dict(sample_token=token, translation=list(rack["translation"]), size=[0.6, 1.7, 1.1],
                              rotation=list(rack["rotation"]), velocity=[0.0, 0.0], detection_name="bicycle",
                              detection_score=0.99, attribute_name="cycle.without_rider"))
        results[token] = boxes
    assert in_racks > 0
    return dict(meta=dict(use_camera=False, use_lidar=True, use_radar=False, use_map=False, use_external=False),
                results=results)


def _assert_same(ours: dict, devkit: dict, tol=1e-9):
    assert abs(ours["mean_ap"] - devkit["mean_ap"]) < tol and abs(ours["nd_score"] - devkit["nd_score"]) < tol
    for metric, value in devkit["tp_errors"].items():
        assert abs(ours["tp_errors"][metric] - value) < tol, metric
    assert set(ours["label_aps"]) == set(devkit["label_aps"]) == set(DETECTION_CLASSES)
    for name in DETECTION_CLASSES:
        for th, ap in devkit["label_aps"][name].items():
            assert abs(ours["label_aps"][name][str(float(th))] - ap) < tol, (name, th)
        for metric, value in devkit["label_tp_errors"][name].items():
            got = ours["label_tp_errors"][name][metric]
            assert (math.isnan(got) and math.isnan(value)) or abs(got - value) < tol, (name, metric, got, value)


def test_the_metric_equals_the_devkits_detection_eval_on_real_tables(tables, tmp_path):
    root, nusc = tables
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_predictions(nusc)))
    ours = metrics_summary(score_results(nusc, path))
    devkit = devkit_eval(root, VERSION, path)
    _assert_same(ours, devkit)
    assert 0.2 < ours["mean_ap"] < 0.95 and all(0 < ours["tp_errors"][m] < 1 for m in ours["tp_errors"])
    # GT velocities without neighbours in time stay NaN (skipped), not 0
    gts, _, _ = gt_from_tables(nusc, [s["token"] for s in nusc.sample])
    assert any(np.isnan(b["velocity"]).any() for boxes in gts.values() for b in boxes)

    # the bike-rack filter: without the rack annotations the bicycles predicted inside the racks are scored
    # (false positives; no GT bicycle of these scenes has its centre inside a rack); bicycle AP moves, by the
    # same amount in both implementations
    no_racks = write_table_subset(root, VERSION, tmp_path / "no_racks", [s["name"] for s in nusc.scene],
                                  drop_categories=[BIKE_RACK])
    ours_nr = metrics_summary(score_results(open_tables(no_racks, VERSION), path))
    devkit_nr = devkit_eval(no_racks, VERSION, path)
    _assert_same(ours_nr, devkit_nr)
    moved_ours = ours["mean_dist_aps"]["bicycle"] - ours_nr["mean_dist_aps"]["bicycle"]
    moved_devkit = devkit["mean_dist_aps"]["bicycle"] - devkit_nr["mean_dist_aps"]["bicycle"]
    assert abs(moved_ours) > 0.01 and abs(moved_ours - moved_devkit) < 1e-9
    for name in ("car", "pedestrian", "barrier"):  # the filter touches bicycles and motorcycles only
        assert ours["mean_dist_aps"][name] == ours_nr["mean_dist_aps"][name]


def test_one_scene_is_scored_as_the_devkit_scores_a_table_copy_of_that_scene(tables, tmp_path):
    root, nusc = tables
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_predictions(nusc, seed=1)))
    ours = metrics_summary(score_results(nusc, path, scenes=["scene-0916"]))
    _assert_same(ours, devkit_eval(root, VERSION, path, scenes=["scene-0916"]))
    assert ours["mean_ap"] != metrics_summary(score_results(nusc, path))["mean_ap"]


def test_bad_results_files_are_named(tables, tmp_path):
    _, nusc = tables
    data = _predictions(nusc, seed=2)
    token = nusc.sample[3]["token"]
    cases = [(dict(results=data["results"]), "a nuScenes results file is"),
             (dict(data, results={k: v for k, v in data["results"].items() if k != token}), "has no entry for 1 of"),
             (dict(data, results=dict(data["results"], **{token: [dict(data["results"][token][0], size=[1, 2])]})),
              r"results\['" + token + r"'\]\[0\]\.size must be 3 finite numbers"),
             (dict(data, results=dict(data["results"], **{token: [dict(data["results"][token][0],
                                                                       detection_name="van")]})),
              "detection_name 'van' is not one of")]
    for i, (bad, message) in enumerate(cases):
        path = tmp_path / f"bad{i}.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=message):
            score_results(nusc, path)
    with pytest.raises(ValueError, match=r"scenes \['scene-0001'\] are not in the tables"):
        score_results(nusc, tmp_path / "bad0.json", scenes=["scene-0001"])


def test_eval_nuscenes_command_prints_both_summaries_and_writes_the_devkits_keys(tables, tmp_path):
    import subprocess
    import sys

    root, nusc = tables
    path, out = tmp_path / "results.json", tmp_path / "metrics.json"
    path.write_text(json.dumps(_predictions(nusc, seed=3)))
    run = subprocess.run([sys.executable, "-m", "pc_kd", "eval-nuscenes", str(path), "--root", str(root), "--version",
                          VERSION, "--out", str(out), "--devkit"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert {"mean_ap", "nd_score", "tp_errors", "label_aps", "label_tp_errors"} <= set(summary)
    assert run.stdout.count("Per-class results:") == 2 and f"NDS: {summary['nd_score']:.4f}" in run.stdout
    assert "largest difference between the two, over every number above: 0\n" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "pc_kd", "eval-nuscenes", str(tmp_path / "missing.json"), "--root",
                          str(root)], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and bad.stderr.strip() == f"error: {tmp_path / 'missing.json'}: no such results file"


def test_converted_real_tables_carry_attributes_radar_points_and_nan_velocities_to_the_runner_metric(tables, tmp_path):
    """create_infos on the real tables writes each annotation's attribute, radar points and NaN velocities; the
    pipeline keeps them; NuScenesDetMetric reading GT from the tables scores its own results JSON exactly as
    pc-kd eval-nuscenes (and so the devkit) does, bike racks included, while GT from the samples cannot see the
    racks."""
    import pickle

    import torch
    from mmengine.structures import InstanceData

    from pc_kd.datasets import NuScenesDataset
    from pc_kd.datasets.converters.nuscenes import create_nuscenes_infos
    from pc_kd.evaluation import NuScenesDetMetric
    from pc_kd.structures import Boxes3D
    from pc_kd.structures.class_names import NUSCENES_ATTRIBUTES, NUSCENES_CLASSES

    root, nusc = tables
    info_path = create_nuscenes_infos(root, tmp_path, VERSION, "val")
    infos = pickle.load(open(info_path, "rb"))["data_list"]
    assert len(infos) == 81
    attribute_of = {a["token"]: a["name"] for a in nusc.attribute}
    nan_velocity = 0
    for info in infos:
        for inst in info["instances"]:
            ann = nusc.get("sample_annotation", inst["token"])
            expected = attribute_of[ann["attribute_tokens"][0]] if ann["attribute_tokens"] else None
            assert (NUSCENES_ATTRIBUTES[inst["attr_label"]] if inst["attr_label"] >= 0 else None) == expected
            assert inst["num_radar_pts"] == ann["num_radar_pts"] and inst["category_name"] == ann["category_name"]
            nan_velocity += bool(np.isnan(inst["velocity"]).any())
    assert nan_velocity > 0
    stored = pickle.load(open(info_path, "rb"))  # the sample holds no sweep files: one sweep per frame here
    for info in stored["data_list"]:
        info["lidar_sweeps"] = []
    pickle.dump(stored, open(info_path, "wb"))
    ds = NuScenesDataset(ann_file=str(info_path), data_root=str(root), test_mode=True, pipeline=[
        dict(type="LoadPointsFromFile", load_dim=5, use_dim=(0, 1, 2, 3)),
        dict(type="LoadAnnotations3D", with_seg=False, with_bbox_3d=True, with_velocity=True),
        dict(type="PackDetInputs")])
    _, racks, _ = gt_from_tables(nusc, [s["token"] for s in nusc.sample])
    rng = np.random.default_rng(4)
    samples, seen_nan, bicycle = [], False, NUSCENES_CLASSES.index("bicycle")
    for i in range(len(ds)):
        sample = ds[i]["data_samples"]
        gt = sample.gt_instances_3d
        seen_nan |= bool(torch.isnan(gt.bboxes_3d.tensor[:, 7:]).any())
        boxes = gt.bboxes_3d.tensor.clone().nan_to_num()
        boxes[:, :2] += torch.from_numpy(rng.normal(0, 0.3, (len(boxes), 2)))
        labels, scores = gt.labels_3d, torch.from_numpy(rng.uniform(0.1, 1, len(boxes)))
        # a confident bicycle at the centre of every bike rack (LiDAR frame): scored only without the rack filter
        global2lidar = np.linalg.inv(np.asarray(sample.ego2global) @ np.asarray(sample.lidar2ego))
        for rack in racks[sample.token]:
            x, y, z = (global2lidar @ [*rack["translation"], 1.0])[:3]
            boxes = torch.cat([boxes, torch.tensor([[x, y, z, 1.7, 0.6, 1.1, 0.0, 0.0, 0.0]], dtype=boxes.dtype)])
            labels, scores = torch.cat([labels, torch.tensor([bicycle])]), torch.cat([scores, torch.tensor([0.99])])
        sample.pred_instances_3d = InstanceData(bboxes_3d=Boxes3D(boxes, with_velocity=True), labels_3d=labels,
                                                scores_3d=scores)
        samples.append(sample.to_dict())
    assert seen_nan and "num_radar_pts" in samples[0]["gt_instances_3d"]
    scores = {}
    for name, tables_root in (("tables", str(root)), ("samples", None)):
        metric = NuScenesDetMetric(classes=NUSCENES_CLASSES, jsonfile_prefix=str(tmp_path / name),
                                   tables_root=tables_root, tables_version=VERSION)
        metric.dataset_meta = ds.metainfo
        metric.process(None, samples)
        scores[name] = metric.compute_metrics(metric.results)
    expected = metrics_summary(score_results(nusc, tmp_path / "tables" / "results_nusc.json"))
    assert abs(scores["tables"]["mAP"] - expected["mean_ap"]) < 1e-9
    assert abs(scores["tables"]["NDS"] - expected["nd_score"]) < 1e-9
    assert abs(scores["tables"]["AP_bicycle"] - expected["mean_dist_aps"]["bicycle"]) < 1e-9
    assert scores["samples"]["AP_bicycle"] < scores["tables"]["AP_bicycle"] - 0.01  # the bicycles in the racks
    with pytest.raises(FileNotFoundError, match="has no v1.0-mini/sample.json"):
        NuScenesDetMetric(tables_root=str(root), tables_version="v1.0-mini")
