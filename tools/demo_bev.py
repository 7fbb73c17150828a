"""BEV detection and cross-modal BEV distillation on synthetic driving scenes, end to end: generate 64 + 64 key
frames and 128 held-out ones (cached), train the LiDAR (also with a motion cue), camera and fusion detectors by the
Runner, distil them into each other (UniDistill's paths), score every model with the nuScenes metric, print the
tables, draw pictures.

    python tools/demo_bev.py [--work-dir work_dirs/demo_bev] [--seeds 0 1 2]
        [--detectors lidar lidar_motion camera fusion]
        [--distill lidar_to_camera fusion_to_camera camera_to_lidar fusion_to_lidar ...] [--heldout-frames 128]
        [--cfg-options k=v ...]

Rows: the four detectors (mean +- std over seeds; ``lidar_motion`` is the LiDAR one whose head also reads
:class:`SweepMotion`'s velocity estimate), and two rows that need no training, scored the same way: a
floor (random boxes: uniform positions, class-mean sizes) and a ceiling (the GT boxes themselves). Also
reported: training and metric seconds, the camera detector's final depth loss and the share of its training
step spent in ``bev_pool``. Pictures of the first validation frame (first seed): ``bev_<detector>.png`` (GT vs
predictions over the LiDAR points), ``cameras_<detector>.png`` (predictions in the six images) and
``render_<detector>.png`` (open3d, when installed). A JSON of every number goes to ``results.json``.

Held-out frames (``--heldout-frames``, 128 by default): every run is also scored on frames of the synthetic split
"test", which no run trains on and no setting (temperature, weights) was chosen on; the tables are printed for the
validation frames and again for the held-out ones.

Distillation (``--distill``): each path trains its student config from ``configs/unidistill`` with the teacher
detector of the same seed (trained first, in this run) and is compared with the student's baseline of the same
seed: same initial weights, same data order, so the difference per seed is the distillation's. Extra paths:
``lidar_to_camera_feature`` / ``lidar_to_camera_feature_relation`` / ``lidar_to_camera_response`` (the ablation of
UniDistill's terms), ``lidar_to_camera_fc_weights`` (the three terms at UniDistill's fusion -> camera weights
10 / 5 / 10), ``lidar_to_camera_unidistill_weights`` (at UniDistill's LiDAR -> camera weights 100 / 40 / 10; the
synthetic config's ``lidar_to_camera`` is the response term alone), ``lidar_to_camera_dense`` / ``lidar_to_camera_crosskd`` (the two options on UniDistill's
weights) and ``lidar_to_camera_response_dense`` / ``lidar_to_camera_response_crosskd`` (each option beside the
response term alone); ``fusion_to_lidar_{feature,relation,response}`` (each term alone; the response term at
UniDistill's temperature 2), ``fusion_to_lidar_t2`` (the three terms, the teacher's heatmap at temperature 2 instead
of the config's 1; ``camera_to_lidar_t2`` the same for camera -> LiDAR), ``fusion_to_lidar_response_t1`` (at
temperature 1 instead of 2) and
two controls, ``fusion_to_lidar_zero`` (every weight 0: reproduces the LiDAR baseline) and
``fusion_to_lidar_null_{feature,response}`` (a weight of 1e-6: the spread of an undistilled run). Reported per
path: the scores, the paired mAP difference, the seeds it helped, and for the first seed the share of a training
step spent in the teacher and in the distillation losses, and ``distill_<path>.png`` (teacher, baseline and
distilled heatmaps and BEV features, box keypoints marked).

Every run keeps its work folder; a rerun reuses a run whose final checkpoint and ``run.json`` exist and whose
config is unchanged (only scoring it again), so an interrupted demo resumes where it stopped.
"""
import argparse
from pathlib import Path

import torch

from pc_kd.engine.config_checks import ConfigOptionsAction
from pc_kd.experiments.bev import print_report, run_experiment

ROOT = Path(__file__).resolve().parents[1] / "configs" / "supervised"
DETECTORS = {"lidar": ROOT / "supervised_centerpoint-pillar_none_synthetic-driving.py",
             "lidar_motion": ROOT / "supervised_centerpoint-pillar-motion_none_synthetic-driving.py",
             "camera": ROOT / "supervised_lss-camera_none_synthetic-driving.py",
             "fusion": ROOT / "supervised_bevfusion_none_synthetic-driving.py"}
UNIDISTILL = ROOT.parent / "unidistill"
_L2C = UNIDISTILL / "unidistill_lss-camera_centerpoint-pillar_synthetic-driving.py"
_C2L = UNIDISTILL / "unidistill_centerpoint-pillar_lss-camera_synthetic-driving.py"
_F2L = UNIDISTILL / "unidistill_centerpoint-pillar_bevfusion_synthetic-driving.py"


# path: (config, student detector, teacher detector, BEVDistiller arguments replacing the config's, or None)
DISTILL = {
    "lidar_to_camera": (_L2C, "camera", "lidar", None),
    "fusion_to_camera": (UNIDISTILL / "unidistill_lss-camera_bevfusion_synthetic-driving.py", "camera", "fusion", None),
    "camera_to_lidar": (_C2L, "lidar", "camera", None),
    "fusion_to_lidar": (_F2L, "lidar", "fusion", None),
    "lidar_to_camera_feature": (_L2C, "camera", "lidar", dict(weights=dict(feature=100.0, relation=0.0, response=0.0))),
    "lidar_to_camera_feature_relation": (
        _L2C, "camera", "lidar", dict(weights=dict(feature=100.0, relation=40.0, response=0.0))),
    # UniDistill's three terms at its fusion -> camera weights (the keypoint feature term 10x lighter)
    "lidar_to_camera_fc_weights": (
        _L2C, "camera", "lidar", dict(weights=dict(feature=10.0, relation=5.0, response=10.0))),
    # the config's three terms at UniDistill's LiDAR -> camera weights 100 / 40 / 10 (whatever the config sets)
    "lidar_to_camera_unidistill_weights": (
        _L2C, "camera", "lidar", dict(weights=dict(feature=100.0, relation=40.0, response=10.0))),
    # the response term alone whatever the config sets (the synthetic config's own setting today)
    "lidar_to_camera_response": (
        _L2C, "camera", "lidar", dict(weights=dict(feature=0.0, relation=0.0, response=10.0))),
    "lidar_to_camera_dense": (UNIDISTILL / "unidistill-dense_lss-camera_centerpoint-pillar_synthetic-driving.py",
                              "camera", "lidar", None),
    "lidar_to_camera_crosskd": (UNIDISTILL / "unidistill-crosskd_lss-camera_centerpoint-pillar_synthetic-driving.py",
                                "camera", "lidar", None),
    # the two options on top of the response term alone (without UniDistill's keypoint feature and relation terms)
    "lidar_to_camera_response_dense": (
        UNIDISTILL / "unidistill-dense_lss-camera_centerpoint-pillar_synthetic-driving.py", "camera", "lidar",
        dict(weights=dict(feature=0.0, relation=0.0, response=10.0, dense=0.1))),
    "lidar_to_camera_response_crosskd": (
        UNIDISTILL / "unidistill-crosskd_lss-camera_centerpoint-pillar_synthetic-driving.py", "camera", "lidar",
        dict(weights=dict(feature=0.0, relation=0.0, response=10.0, crosskd=10.0))),
    # fusion -> LiDAR: each term alone at the config's weight, the teacher's heatmap at UniDistill's temperature 2
    # (the three terms; the response term alone) or at 1 (the config's), and two controls: every weight 0 (must
    # reproduce the LiDAR baseline) and a weight of 1e-6 (the objective unchanged, the float sums not: the spread
    # of an undistilled run)
    "fusion_to_lidar_feature": (_F2L, "lidar", "fusion", dict(weights=dict(feature=10.0, relation=0.0, response=0.0))),
    "fusion_to_lidar_relation": (_F2L, "lidar", "fusion", dict(weights=dict(feature=0.0, relation=1.0, response=0.0))),
    "fusion_to_lidar_response": (
        _F2L, "lidar", "fusion", dict(weights=dict(feature=0.0, relation=0.0, response=10.0), t_temp=2.0)),
    "fusion_to_lidar_response_t1": (
        _F2L, "lidar", "fusion", dict(weights=dict(feature=0.0, relation=0.0, response=10.0), t_temp=1.0)),
    "fusion_to_lidar_t2": (_F2L, "lidar", "fusion", dict(t_temp=2.0)),
    "camera_to_lidar_t2": (_C2L, "lidar", "camera", dict(t_temp=2.0)),
    "fusion_to_lidar_zero": (_F2L, "lidar", "fusion", dict(weights=dict(feature=0.0, relation=0.0, response=0.0))),
    "fusion_to_lidar_null_feature": (
        _F2L, "lidar", "fusion", dict(weights=dict(feature=1e-6, relation=0.0, response=0.0))),
    "fusion_to_lidar_null_response": (
        _F2L, "lidar", "fusion", dict(weights=dict(feature=0.0, relation=0.0, response=1e-6), t_temp=2.0)),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="work_dirs/demo_bev", help="where runs, tables and pictures go")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (table: mean +- std)")
    parser.add_argument("--detectors", nargs="+", choices=list(DETECTORS), default=list(DETECTORS),
                        metavar="DETECTOR", help=f"detectors to train and score: {', '.join(DETECTORS)}")
    parser.add_argument("--distill", nargs="+", choices=list(DISTILL), default=[], metavar="PATH",
                        help=f"distillation paths to train after the detectors (their students and teachers are "
                             f"added to --detectors): {', '.join(DISTILL)}")
    parser.add_argument("--cfg-options", nargs="+", action=ConfigOptionsAction, default={},
                        help="override entries of every detector config, e.g. train_cfg.max_iters=20")
    parser.add_argument("--heldout-frames", type=int, default=128,
                        help="also score every run on this many held-out frames (the synthetic split 'test', never "
                             "used to choose a setting; 0: none)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    detectors = {d: config for d, config in DETECTORS.items()
                 if d in args.detectors or any(d in DISTILL[p][1:3] for p in args.distill)}
    result = run_experiment(detectors, {p: DISTILL[p] for p in args.distill}, args.seeds, args.work_dir,
                            args.cfg_options, args.heldout_frames)
    print_report(result, args.work_dir)
    return result["detectors"], result["reference"]


if __name__ == "__main__":
    from pc_kd.engine import exit_on_user_error

    with exit_on_user_error():
        main()
