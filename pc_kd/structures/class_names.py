"""Class lists and label mappings of the supported datasets (shared by datasets, heads and metrics)."""
import numpy as np

IGNORE_INDEX = 255  # semantic label of unannotated points / pixels in every pc_kd dataset

# ScanNet v2 benchmark: 20 classes, given by their nyu40 ids.
SCANNET20_CLASSES = ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
                     "picture", "counter", "desk", "curtain", "refrigerator", "showercurtrain", "toilet", "sink",
                     "bathtub", "otherfurniture")
SCANNET20_NYU40_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)

S3DIS_CLASSES = ("ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa",
                 "bookcase", "board", "clutter")

NUSCENES_CLASSES = ("car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
                    "pedestrian", "traffic_cone", "barrier")
# Per-point classes of nuScenes LiDAR points labelled from the 3D boxes (the rest of the detection classes and
# every point outside a box: "other")
NUSCENES_BOX_POINT_CLASSES = ("car", "truck", "bus", "pedestrian", "bicycle", "motorcycle", "barrier", "traffic_cone",
                              "other")
# nuScenes attribute names, in the order of mmdet3d's ``attr_label`` (index into this tuple; -1 = none)
NUSCENES_ATTRIBUTES = ("cycle.with_rider", "cycle.without_rider", "pedestrian.moving", "pedestrian.standing",
                       "pedestrian.sitting_lying_down", "vehicle.moving", "vehicle.parked", "vehicle.stopped")
# nuScenes category name -> detection class (the devkit's detection challenge mapping).
NUSCENES_CATEGORY_TO_CLASS = {
    "movable_object.barrier": "barrier", "vehicle.bicycle": "bicycle", "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus", "vehicle.car": "car", "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle", "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian", "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian", "movable_object.trafficcone": "traffic_cone",
    "vehicle.trailer": "trailer", "vehicle.truck": "truck",
}


def label_mapping(raw_ids, max_raw: int = 256) -> np.ndarray:
    """``[max_raw]`` int64 lookup table: ``raw_ids[k] -> k``, every other raw id -> IGNORE_INDEX."""
    table = np.full(max_raw, IGNORE_INDEX, dtype=np.int64)
    table[np.asarray(raw_ids, dtype=np.int64)] = np.arange(len(raw_ids))
    return table


def apply_label_mapping(raw: np.ndarray, table: np.ndarray, where: str) -> np.ndarray:
    """Map raw semantic ids through ``table``; ids outside the table raise with the file named."""
    raw = np.asarray(raw, dtype=np.int64)
    bad = (raw < 0) | (raw >= len(table))
    if bad.any():
        raise ValueError(f"{where}: semantic ids {np.unique(raw[bad])[:10].tolist()} outside 0..{len(table) - 1}"
                         f"; is this the right dataset / label file?")
    return table[raw]
