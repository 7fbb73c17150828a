"""nuScenes detection scores over class subsets: exact cases, and the devkit's own aggregation on all classes."""
import copy
import math

import numpy as np
import pytest

from pc_kd.evaluation import nuscenes_detection_scores
from pc_kd.evaluation.nuscenes_det import CLASS_RANGE
from pc_kd.structures.class_names import NUSCENES_ATTRIBUTES

ATTRIBUTE = {"car": "vehicle.moving", "truck": "vehicle.parked", "bus": "vehicle.moving",
             "trailer": "vehicle.parked", "construction_vehicle": "vehicle.parked",
             "pedestrian": "pedestrian.moving", "motorcycle": "cycle.with_rider", "bicycle": "cycle.without_rider",
             "traffic_cone": "", "barrier": ""}


def _quat(yaw):
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def _scene(classes, samples=6, per_sample=7, seed=0):
    rng = np.random.default_rng(seed)
    gts = {}
    for s in range(samples):
        boxes = []
        for i in range(per_sample):
            name = classes[(s * per_sample + i) % len(classes)]
            # boxes on a grid 6 m apart, so that a 0.7 m shift never lands on another box
            xy = [-24.0 + 6.0 * (i % 8) + rng.uniform(-0.5, 0.5), -24.0 + 6.0 * (i // 8) + rng.uniform(-0.5, 0.5)]
            boxes.append(dict(translation=[*xy, rng.uniform(-1, 1)], size=list(rng.uniform(0.5, 4, 3)),
                              rotation=_quat(rng.uniform(-3, 3)), velocity=list(rng.uniform(-2, 2, 2)),
                              detection_name=name, attribute_name=ATTRIBUTE[name], num_pts=10,
                              ego_translation=[*xy, 0.0]))
        gts[f"sample{s}"] = boxes
    return gts


def _as_predictions(gts, edit=None):
    preds = copy.deepcopy(gts)
    for boxes in preds.values():
        for j, b in enumerate(boxes):
            b.pop("num_pts")
            b["detection_score"] = 1.0 - 0.01 * j
            if edit:
                edit(b)
    return preds


CLASSES = ["car", "pedestrian", "barrier", "traffic_cone", "truck"]


def test_ground_truth_as_predictions_scores_one():
    gts = _scene(CLASSES)
    out = nuscenes_detection_scores(gts, _as_predictions(gts), CLASSES)
    assert out["mAP"] == pytest.approx(1.0) and out["NDS"] == pytest.approx(1.0)
    for name in ("mATE", "mASE", "mAOE", "mAVE", "mAAE"):
        assert out[name] == pytest.approx(0.0, abs=1e-9), name
    assert math.isnan(out["tp_errors"]["traffic_cone"]["orient_err"])


def test_predictions_moved_07m_miss_at_05m_and_give_mate_07():
    gts = _scene(CLASSES)

    def move(b):
        b["translation"][0] += 0.7
        b["ego_translation"][0] += 0.7

    out = nuscenes_detection_scores(gts, _as_predictions(gts, move), CLASSES)
    for name in CLASSES:
        assert out["AP"][name][0.5] == 0.0 and out["AP"][name][1.0] == pytest.approx(1.0)
    assert out["mAP"] == pytest.approx(0.75) and out["mATE"] == pytest.approx(0.7)
    assert out["NDS"] == pytest.approx((5 * 0.75 + 0.3 + 4) / 10)


def test_yaw_off_by_03_gives_maoe_03():
    gts = _scene(CLASSES)

    def turn(b):
        w, z = b["rotation"][0], b["rotation"][3]
        b["rotation"] = _quat(2 * math.atan2(z, w) + 0.3)

    out = nuscenes_detection_scores(gts, _as_predictions(gts, turn), CLASSES)
    assert out["mAOE"] == pytest.approx(0.3) and out["mAP"] == pytest.approx(1.0)


def test_class_range_and_empty_boxes_filter_like_the_devkit():
    gts = _scene(["car"], samples=2, per_sample=3)
    far = copy.deepcopy(gts["sample0"][0])
    far["translation"][0] = far["ego_translation"][0] = 60.0   # beyond the 50 m car range: not counted
    empty = copy.deepcopy(gts["sample1"][0])
    empty["num_pts"] = 0                                        # a GT box no point hits: not counted
    gts["sample0"].append(far)
    gts["sample1"].append(empty)
    preds = _as_predictions({t: [b for b in v if b is not far and b is not empty] for t, v in gts.items()})
    assert nuscenes_detection_scores(gts, preds, ["car"])["mAP"] == pytest.approx(1.0)


def test_all_ten_classes_aggregate_as_the_devkits_detection_metrics():
    from nuscenes.eval.detection.config import config_factory
    from nuscenes.eval.detection.data_classes import DetectionMetrics

    classes = list(CLASS_RANGE)
    gts = _scene(classes, samples=8, per_sample=12, seed=3)
    rng = np.random.default_rng(4)

    def jitter(b):
        b["translation"] = list(np.asarray(b["translation"]) + rng.normal(0, 0.6, 3))
        b["size"] = list(np.asarray(b["size"]) * rng.uniform(0.7, 1.3, 3))
        b["velocity"] = list(np.asarray(b["velocity"]) + rng.normal(0, 0.5, 2))
        b["detection_score"] = float(rng.uniform())
        if rng.uniform() < 0.3:
            b["attribute_name"] = {"vehicle.moving": "vehicle.parked"}.get(b["attribute_name"], b["attribute_name"])

    preds = _as_predictions(gts, jitter)
    out = nuscenes_detection_scores(gts, preds, classes)
    metrics = DetectionMetrics(config_factory("detection_cvpr_2019"))
    for name in classes:
        for th, ap in out["AP"][name].items():
            metrics.add_label_ap(name, th, ap)
        for m, e in out["tp_errors"][name].items():
            metrics.add_label_tp(name, m, e)
    assert out["mAP"] == pytest.approx(metrics.mean_ap, abs=1e-12)
    assert out["NDS"] == pytest.approx(metrics.nd_score, abs=1e-12)
    for m, name in (("trans_err", "mATE"), ("scale_err", "mASE"), ("orient_err", "mAOE"), ("vel_err", "mAVE"),
                    ("attr_err", "mAAE")):
        assert out[name] == pytest.approx(metrics.tp_errors[m], abs=1e-12)
    assert 0.05 < out["mAP"] < 0.95


def test_bad_input_is_named():
    gts = _scene(["car"], samples=1, per_sample=2)
    with pytest.raises(KeyError, match="no prediction entry"):
        nuscenes_detection_scores(gts, {}, ["car"])
    with pytest.raises(ValueError, match="unknown classes"):
        nuscenes_detection_scores(gts, _as_predictions(gts), ["lorry"])
    bad = _as_predictions(gts)
    bad["sample0"][0]["size"] = [1.0, -2.0, 1.0]
    with pytest.raises(ValueError, match=r"pred_boxes\['sample0'\]\[0\].size"):
        nuscenes_detection_scores(gts, bad, ["car"])
    bad = _as_predictions(gts)
    bad["sample0"][1]["detection_score"] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        nuscenes_detection_scores(gts, bad, ["car"])


def test_attribute_follows_the_speed_rule():
    from pc_kd.evaluation.nuscenes_det import attribute_from_speed

    assert attribute_from_speed("car", 0.3) == "vehicle.moving" and attribute_from_speed("car", 0.2) == "vehicle.parked"
    assert attribute_from_speed("bus", 0.1) == "vehicle.stopped" and attribute_from_speed("bus", 2) == "vehicle.moving"
    assert attribute_from_speed("pedestrian", 0.1) == "pedestrian.standing"
    assert attribute_from_speed("pedestrian", 1.0) == "pedestrian.moving"
    assert attribute_from_speed("bicycle", 1.0) == "cycle.with_rider"
    assert attribute_from_speed("motorcycle", 0.0) == "cycle.without_rider"
    assert attribute_from_speed("barrier", 3.0) == "" and attribute_from_speed("traffic_cone", 0.0) == ""


@pytest.mark.realdata
def test_real_sample_boxes_reach_the_global_frame_like_the_devkit_and_round_trip(real_data):
    import pickle

    import torch
    from nuscenes.eval.common.utils import quaternion_yaw
    from nuscenes.utils.data_classes import Box
    from pyquaternion import Quaternion

    from pc_kd.evaluation.nuscenes_det import lidar_boxes_to_results
    from pc_kd.structures import Boxes3D

    with open(real_data / "nuscenes_demo" / "mmdet3d_infos_v1.1.pkl", "rb") as f:
        infos = pickle.load(f)
    classes = sorted(infos["metainfo"]["categories"], key=infos["metainfo"]["categories"].get)
    info = infos["data_list"][0]
    inst = [i for i in info["instances"] if i["bbox_label_3d"] >= 0]
    boxes = Boxes3D(torch.tensor([i["bbox_3d"] + list(i["velocity"]) for i in inst], dtype=torch.float64))
    labels = np.array([i["bbox_label_3d"] for i in inst])
    lidar2ego, ego2global = np.array(info["lidar_points"]["lidar2ego"]), np.array(info["ego2global"])
    gts = lidar_boxes_to_results(info["token"], boxes, labels, classes, lidar2ego, ego2global,
                                 num_pts=[i["num_lidar_pts"] for i in inst])
    lidar2global = ego2global @ lidar2ego
    for i, ours in zip(inst, gts):
        x, y, z, length, width, height, yaw = i["bbox_3d"]
        ref = Box([x, y, z], [width, length, height], Quaternion(axis=[0, 0, 1], angle=yaw),
                  velocity=(*i["velocity"], 0.0))
        ref.rotate(Quaternion(matrix=lidar2global[:3, :3], atol=1e-6))
        ref.translate(lidar2global[:3, 3])
        np.testing.assert_allclose(ours["translation"], ref.center, atol=1e-6)
        np.testing.assert_allclose(ours["size"], ref.wlh, atol=1e-9)
        assert abs(quaternion_yaw(Quaternion(ours["rotation"])) - quaternion_yaw(ref.orientation)) < 2e-3
        if np.isfinite(ref.velocity).all():
            np.testing.assert_allclose(ours["velocity"], ref.velocity[:2], atol=1e-3)
    assert len(gts) > 20
    # predictions = the GT the metric keeps (boxes no LiDAR point hits are dropped from the GT, as the devkit)
    preds = {info["token"]: [dict(b, detection_score=0.5) for b in gts if b["num_pts"] > 0]}
    for b in preds[info["token"]]:
        b["velocity"] = [0.0 if np.isnan(v) else v for v in b["velocity"]]
    out = nuscenes_detection_scores({info["token"]: gts}, preds, classes)
    assert len(out["classes"]) >= 3 and out["mAP"] == pytest.approx(1.0) and out["mATE"] == pytest.approx(0.0)
    assert out["mAOE"] == pytest.approx(0.0) and out["mASE"] == pytest.approx(0.0, abs=1e-9)
    assert out["NDS"] == pytest.approx(1.0)


@pytest.mark.realdata
def test_metric_scores_the_real_sample_and_writes_a_results_json_the_devkit_loads(real_data, tmp_path):
    import pickle

    import torch
    from mmengine.structures import InstanceData
    from nuscenes.eval.common.loaders import load_prediction
    from nuscenes.eval.detection.data_classes import DetectionBox

    from pc_kd.evaluation import NuScenesDetMetric
    from pc_kd.structures import Boxes3D, Point3DDataSample

    with open(real_data / "nuscenes_demo" / "mmdet3d_infos_v1.1.pkl", "rb") as f:
        infos = pickle.load(f)
    classes = sorted(infos["metainfo"]["categories"], key=infos["metainfo"]["categories"].get)
    info = infos["data_list"][0]
    inst = [i for i in info["instances"] if i["bbox_label_3d"] >= 0 and i["num_lidar_pts"] > 0]
    boxes = Boxes3D(torch.tensor([i["bbox_3d"] + [0.0, 0.0] for i in inst], dtype=torch.float64))
    labels = torch.tensor([i["bbox_label_3d"] for i in inst])
    sample = Point3DDataSample(metainfo=dict(token=info["token"], lidar2ego=np.array(info["lidar_points"]["lidar2ego"]),
                                             ego2global=np.array(info["ego2global"])))
    sample.gt_instances_3d = InstanceData(bboxes_3d=boxes, labels_3d=labels,
                                          num_lidar_pts=torch.tensor([i["num_lidar_pts"] for i in inst]))
    sample.pred_instances_3d = InstanceData(bboxes_3d=Boxes3D(boxes.tensor.clone()), labels_3d=labels,
                                            scores_3d=torch.linspace(0.9, 0.1, len(inst)))
    metric = NuScenesDetMetric(jsonfile_prefix=str(tmp_path))
    metric.dataset_meta = dict(classes=classes)
    metric.process({}, [sample.to_dict()])
    out = metric.evaluate(1)
    assert out["nuscenes/mAP"] == pytest.approx(1.0) and out["nuscenes/NDS"] == pytest.approx(1.0)
    assert out["nuscenes/mATE"] == pytest.approx(0.0, abs=1e-9) and out["nuscenes/AP_car"] == pytest.approx(1.0)
    loaded, meta = load_prediction(str(tmp_path / "results_nusc.json"), 500, DetectionBox)
    assert meta["use_lidar"] and loaded.sample_tokens == [info["token"]]
    assert len(loaded[info["token"]]) == len(inst)
    assert {b.attribute_name for b in loaded[info["token"]]} <= {"vehicle.parked", "pedestrian.standing", "",
                                                                "vehicle.stopped", "cycle.without_rider"}


class _Tables:
    """The few nuScenes tables the devkit's ``DetectionEval`` reads (load_gt, add_center_dist,
    filter_eval_boxes), duck-typed: samples of scene-0103 (mini_val), their annotations, LiDAR sample data and
    ego poses, attributes, and the box velocities."""

    version = "v1.0-mini"

    def __init__(self):
        self.sample, self.attribute = [], [{"token": f"attr{i}", "name": n} for i, n in enumerate(NUSCENES_ATTRIBUTES)]
        self._rows = {"scene": {"scene0": {"token": "scene0", "name": "scene-0103"}}, "sample_annotation": {},
                      "sample_data": {}, "ego_pose": {}, "attribute": {a["token"]: a for a in self.attribute}}
        self._velocity = {}

    def add_sample(self, token, ego2global, gt_boxes):
        category = {"car": "vehicle.car", "truck": "vehicle.truck", "bus": "vehicle.bus.rigid",
                    "trailer": "vehicle.trailer", "construction_vehicle": "vehicle.construction",
                    "pedestrian": "human.pedestrian.adult", "motorcycle": "vehicle.motorcycle",
                    "bicycle": "vehicle.bicycle", "traffic_cone": "movable_object.trafficcone",
                    "barrier": "movable_object.barrier"}
        anns = []
        for i, b in enumerate(gt_boxes):
            ann = f"{token}_ann{i}"
            attr = [f"attr{NUSCENES_ATTRIBUTES.index(b['attribute_name'])}"] if b["attribute_name"] else []
            self._rows["sample_annotation"][ann] = dict(
                token=ann, translation=b["translation"], size=b["size"], rotation=b["rotation"],
                category_name=category[b["detection_name"]], attribute_tokens=attr, num_lidar_pts=b["num_pts"],
                num_radar_pts=0)
            self._velocity[ann] = np.array([*b["velocity"], 0.0])
            anns.append(ann)
        self._rows["ego_pose"][f"{token}_pose"] = {"translation": list(ego2global[:3, 3])}
        self._rows["sample_data"][f"{token}_lidar"] = {"ego_pose_token": f"{token}_pose"}
        row = {"token": token, "scene_token": "scene0", "anns": anns, "data": {"LIDAR_TOP": f"{token}_lidar"}}
        self._rows["sample"] = {**self._rows.get("sample", {}), token: row}
        self.sample.append(row)

    def get(self, table, token):
        return self._rows[table][token]

    def box_velocity(self, token):
        return self._velocity[token]


def test_metric_equals_the_devkits_detection_eval_end_to_end_on_random_boxes(tmp_path):
    """LiDAR-frame GT and noisy predictions of all 10 classes through NuScenesDetMetric (which also writes the
    official results JSON); the devkit's DetectionEval, run on that JSON against the same GT in its tables,
    gives the same mAP, NDS and TP errors."""
    import torch
    from nuscenes.eval.detection.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval

    from pc_kd.evaluation import NuScenesDetMetric
    from pc_kd.evaluation.nuscenes_det import lidar_boxes_to_results
    from pc_kd.structures import Boxes3D, Point3DDataSample
    from mmengine.structures import InstanceData

    rng = np.random.default_rng(11)
    classes = list(CLASS_RANGE)
    metric = NuScenesDetMetric(jsonfile_prefix=str(tmp_path))
    metric.dataset_meta = dict(classes=classes)
    tables = _Tables()
    attr_choices = {"car": [5, 6, 7], "truck": [5, 6], "bus": [5, 7], "trailer": [6], "construction_vehicle": [6],
                    "pedestrian": [2, 3, 4], "motorcycle": [0, 1], "bicycle": [0, 1], "traffic_cone": [-1],
                    "barrier": [-1]}
    for s in range(8):
        token = f"sample{s}"
        yaw = rng.uniform(-np.pi, np.pi)
        ego2global = np.eye(4)
        ego2global[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
        ego2global[:3, 3] = rng.uniform(100, 1000, 3)
        lidar2ego = np.eye(4)
        lidar2ego[:2, :2] = [[0, 1], [-1, 0]]
        lidar2ego[:3, 3] = [0.9, 0.0, 1.8]
        n = 14
        labels = np.arange(s, s + n) % 10
        gt = np.concatenate([rng.uniform(-45, 45, (n, 2)), rng.uniform(-2, 0, (n, 1)), rng.uniform(0.5, 5, (n, 3)),
                             rng.uniform(-np.pi, np.pi, (n, 1)), rng.uniform(-4, 4, (n, 2))], 1)
        attrs = np.array([rng.choice(attr_choices[classes[c]]) for c in labels])
        num_pts = rng.integers(0, 30, n)
        keep = rng.uniform(size=n) < 0.8  # some GT is missed
        pred = gt[keep].copy()
        pred[:, :3] += rng.normal(0, 0.5, (len(pred), 3))
        pred[:, 3:6] *= rng.uniform(0.8, 1.2, (len(pred), 3))
        pred[:, 6] += rng.normal(0, 0.4, len(pred))
        pred[:, 7:9] += rng.normal(0, 0.8, (len(pred), 2))
        false = np.concatenate([rng.uniform(-45, 45, (4, 2)), rng.uniform(-2, 0, (4, 1)), rng.uniform(0.5, 5, (4, 3)),
                                rng.uniform(-3, 3, (4, 1)), rng.uniform(-4, 4, (4, 2))], 1)
        pred_labels = np.concatenate([labels[keep], rng.integers(0, 10, 4)])
        sample = Point3DDataSample(metainfo=dict(token=token, lidar2ego=lidar2ego, ego2global=ego2global))
        sample.gt_instances_3d = InstanceData(bboxes_3d=Boxes3D(gt), labels_3d=torch.from_numpy(labels),
                                              num_lidar_pts=torch.from_numpy(num_pts),
                                              attr_labels=torch.from_numpy(attrs))
        sample.pred_instances_3d = InstanceData(bboxes_3d=Boxes3D(np.concatenate([pred, false])),
                                                labels_3d=torch.from_numpy(pred_labels),
                                                scores_3d=torch.from_numpy(rng.uniform(0.05, 1, len(pred_labels))))
        metric.process({}, [sample.to_dict()])
        tables.add_sample(token, ego2global, lidar_boxes_to_results(
            token, Boxes3D(gt), labels, classes, lidar2ego, ego2global, num_pts=num_pts,
            attributes=[NUSCENES_ATTRIBUTES[a] if a >= 0 else "" for a in attrs]))
    ours = metric.evaluate(8)
    devkit = DetectionEval(tables, config_factory("detection_cvpr_2019"), str(tmp_path / "results_nusc.json"),
                           "mini_val", str(tmp_path / "devkit"), verbose=False).main(plot_examples=0,
                                                                                     render_curves=False)
    assert 0.05 < ours["nuscenes/mAP"] < 0.95
    assert abs(ours["nuscenes/mAP"] - devkit["mean_ap"]) < 1e-9
    assert abs(ours["nuscenes/NDS"] - devkit["nd_score"]) < 1e-9
    for name, key in (("mATE", "trans_err"), ("mASE", "scale_err"), ("mAOE", "orient_err"), ("mAVE", "vel_err"),
                      ("mAAE", "attr_err")):
        assert abs(ours[f"nuscenes/{name}"] - devkit["tp_errors"][key]) < 1e-9, name
    for name in classes:
        assert abs(ours[f"nuscenes/AP_{name}"] - devkit["mean_dist_aps"][name]) < 1e-9, name
