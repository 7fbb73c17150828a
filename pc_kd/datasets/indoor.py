"""ScanNet v2 and S3DIS datasets over info files (ours from tools/create_infos.py, or mmdet3d's)."""
from pathlib import Path

from pc_kd.registry import DATASETS
from pc_kd.structures.class_names import S3DIS_CLASSES, SCANNET20_CLASSES, SCANNET20_NYU40_IDS
from pc_kd.utils.io import read_matrix_txt

from .base import InfoFileDataset


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
    CREATE_INFOS = "python tools/create_infos.py scannet --root <ScanNet folder with scans/> --out {out} --split {split}"

    def parse_data_info(self, info: dict) -> dict:
        info = super().parse_data_info(info)
        if "images" not in info:
            info["images"] = self._discover_posed_images(str(info.get("sample_idx", "")))
        return self.parse_images(info)

    def _discover_posed_images(self, scene: str) -> list:
        """Frames of mmdet3d's ``posed_images/<scene>/`` export (``<frame>.jpg`` + ``<frame>.txt`` camera-to-world
        pose + ``intrinsic.txt``) when the info file does not list them."""
        folder = Path(self.data_root) / "posed_images" / scene
        if not scene or not (folder / "intrinsic.txt").is_file():
            return []
        K = read_matrix_txt(folder / "intrinsic.txt", "posed-image intrinsics").tolist()
        return [dict(img_path=str(jpg), cam2world=read_matrix_txt(jpg.with_suffix(".txt"), "camera pose").tolist(),
                     cam2img=K) for jpg in sorted(folder.glob("*.jpg")) if jpg.with_suffix(".txt").is_file()]


@DATASETS.register_module()
class S3DISDataset(InfoFileDataset):
    """S3DIS rooms: points ``[N, 6]`` (x y z shifted to the room minimum, r g b 0..255), 13-class semantic
    masks (ids 0..12), instance masks; posed frames (e.g. from 2D-3D-S) when the info lists ``images`` in
    the ScanNet schema. Layout as mmdet3d's / ``tools/create_infos.py s3dis``::

        points/Area_<k>_<room>.bin  semantic_mask/...  instance_mask/...  s3dis_infos_Area_<k>.pkl
    """

    METAINFO = dict(classes=S3DIS_CLASSES, seg_raw_ids=tuple(range(len(S3DIS_CLASSES))))
    CREATE_INFOS = ("python tools/create_infos.py s3dis --root <Stanford3dDataset_v1.2_Aligned_Version> --out {out} "
                    "--areas {area}")

    def parse_data_info(self, info: dict) -> dict:
        return self.parse_images(super().parse_data_info(info))
