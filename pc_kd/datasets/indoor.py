"""ScanNet v2 and S3DIS datasets over info files (ours from tools/create_infos.py, or mmdet3d's)."""
from pc_kd.registry import DATASETS

from .base import InfoFileDataset
from .class_names import S3DIS_CLASSES, SCANNET20_CLASSES, SCANNET20_NYU40_IDS


@DATASETS.register_module()
class ScanNetDataset(InfoFileDataset):
    """ScanNet v2 scenes: points ``[N, 6]`` (x y z r g b), nyu40 semantic masks mapped to the 20 benchmark
    classes, instance masks, axis-aligned boxes, and posed colour frames (``images``: ``img_path``,
    ``cam2world``, ``cam2img``) when the info lists them.

    Layout under ``data_root`` (mmdet3d-processed, as ``tools/create_infos.py scannet`` writes it)::

        points/<scene>.bin  semantic_mask/<scene>.bin  instance_mask/<scene>.bin
        posed_images/<scene>/<frame>.jpg|.txt, intrinsic.txt      scannet_infos_<split>.pkl
    """

    METAINFO = dict(classes=SCANNET20_CLASSES, seg_raw_ids=SCANNET20_NYU40_IDS)

    def parse_data_info(self, info: dict) -> dict:
        info = super().parse_data_info(info)
        images = []
        for i, img in enumerate(info.get("images", [])):
            img = dict(img)
            img["img_path"] = self._checked("img", img["img_path"], f"images[{i}].img_path")
            images.append(img)
        info["images"] = images
        return info


@DATASETS.register_module()
class S3DISDataset(InfoFileDataset):
    """S3DIS rooms: points ``[N, 6]`` (x y z shifted to the room minimum, r g b 0..255), 13-class semantic
    masks (ids 0..12), instance masks. Layout as mmdet3d's / ``tools/create_infos.py s3dis``::

        points/Area_<k>_<room>.bin  semantic_mask/...  instance_mask/...  s3dis_infos_Area_<k>.pkl
    """

    METAINFO = dict(classes=S3DIS_CLASSES, seg_raw_ids=tuple(range(len(S3DIS_CLASSES))))
