"""CenterPoint's BEV detection head: per task group a class heatmap and box regression maps, Gaussian focal +
L1 losses, and decoding with per-task circle NMS."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.structures import InstanceData
from torch import nn
from torch.nn import functional as F

from pc_kd.ops import circle_nms
from pc_kd.registry import MODELS
from pc_kd.structures import Boxes3D
from pc_kd.structures.class_names import NUSCENES_CLASSES

from .gaussian import draw_gaussian, gaussian_radius

DEFAULT_COMMON_HEADS = dict(reg=2, height=1, dim=3, rot=2, vel=2)
# the order of the regression targets / code weights: reg (2), height, dim (3, log), rot (sin, cos), vel (2)
CODE_ORDER = ("reg", "height", "dim", "rot", "vel")
# CenterPoint's six nuScenes task groups (mmdet3d's centerpoint_*_nus configs) -> their circle-NMS thresholds (m^2)
NUSCENES_TASK_NMS_RADIUS_SQ = {("car",): 4.0, ("truck", "construction_vehicle"): 12.0, ("bus", "trailer"): 10.0,
                               ("barrier",): 1.0, ("motorcycle", "bicycle"): 0.85,
                               ("pedestrian", "traffic_cone"): 0.175}


def gaussian_focal_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, gamma: float = 4.0
                        ) -> torch.Tensor:
    """CenterNet's focal loss on a heatmap (``pred`` sigmoid probabilities, ``target`` Gaussian peaks, both
    the same shape), summed: ``-(1-p)^a log p`` at cells with target 1, ``-(1-t)^g p^a log(1-p)`` elsewhere."""
    eps = 1e-12
    pos = target.eq(1).float()
    pos_loss = -(pred + eps).log() * (1 - pred).pow(alpha) * pos
    neg_loss = -(1 - pred + eps).log() * pred.pow(alpha) * (1 - target).pow(gamma) * (1 - pos)
    return pos_loss.sum() + neg_loss.sum()


def _branch(cin: int, head_conv: int, cout: int, num_conv: int, bias: float = 0.0) -> nn.Sequential:
    layers = []
    for _ in range(num_conv - 1):
        layers += [nn.Conv2d(cin, head_conv, 3, padding=1, bias=False), nn.BatchNorm2d(head_conv), nn.ReLU(inplace=True)]
        cin = head_conv
    last = nn.Conv2d(cin, cout, 3, padding=1)
    nn.init.constant_(last.bias, bias)
    return nn.Sequential(*layers, last)


@MODELS.register_module()
class CenterHead(nn.Module):
    """CenterPoint head on a BEV map ``[B, in_channels, H, W]`` (rows along y, cell (0, 0) at (x_min, y_min)).

    Args:
        in_channels: channels of the neck output.
        tasks: class groups, e.g. ``[dict(class_names=['car']), dict(class_names=['pedestrian', 'traffic_cone'])]``;
            each has its own heatmap branch and circle-NMS radius. A task may set ``yaw_symmetry=k`` when its
            objects look the same after a turn by 2 pi / k (a barrier: 2): its rot target is then
            ``(sin k yaw, cos k yaw)`` and decoding divides the angle by k, so one appearance never has two
            targets (the nuScenes metric scores barrier headings modulo pi).
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` of the BEV grid (LiDAR frame).
        out_cell: ``(dx, dy)`` metres of one cell of the head's input map.
        class_names: the dataset's classes; labels are indices into it (default: nuScenes' 10).
        common_heads: regression branches and their channels (reg 2, height 1, dim 3, rot 2, vel 2).
        code_weights: per regression channel, in the order reg, height, dim, rot, vel (1 x8, 0.2 x2).
        loss_bbox_weight: weight of the L1 loss (0.25); the heatmap loss has weight 1.
        reg_radius: regression targets at every cell within this many cells (Chebyshev) of a box's centre cell,
            each cell's ``reg`` offset measured from itself (0: the centre cell only, as CenterPoint; 1: its 3 x 3
            neighbourhood, which gives the yaw and velocity branches 9x the supervision per step).
        num_heatmap_convs / num_reg_convs: 3x3 convs per heatmap / regression branch (2 and 2 as CenterPoint;
            ``num_reg_convs=1`` makes each regression branch one linear conv on the shared features).
        gaussian_overlap / min_radius: heatmap peaks (0.1 and 2 as CenterPoint).
        nms_radius_sq: per task, the circle-NMS threshold on the *squared* BEV distance (m^2); default: the
            published ``[4, 12, 10, 1, 0.85, 0.175]`` when the tasks are CenterPoint's six nuScenes groups (car |
            truck, construction_vehicle | bus, trailer | barrier | motorcycle, bicycle | pedestrian,
            traffic_cone), else 4 for every task.
        score_threshold, max_num (top-k per task before NMS), post_max (per task after NMS), post_center_range.

    ``forward`` returns one dict per task: ``heatmap [B, n_task, H, W]`` (logits) and each common head's map.
    Heights are of the geometric box centre (pc_kd's box convention).
    """

    def __init__(self, in_channels: int, tasks: Sequence[dict], point_cloud_range: Sequence[float],
                 out_cell: Sequence[float], class_names: Sequence[str] = NUSCENES_CLASSES,
                 common_heads: Optional[Dict[str, int]] = None, share_conv_channel: int = 64, head_conv: int = 64,
                 num_heatmap_convs: int = 2, num_reg_convs: int = 2,
                 code_weights: Sequence[float] = (1.0,) * 8 + (0.2, 0.2), loss_bbox_weight: float = 0.25,
                 reg_radius: int = 0, gaussian_overlap: float = 0.1, min_radius: int = 2,
                 nms_radius_sq: Optional[Sequence[float]] = None, score_threshold: float = 0.1, max_num: int = 500,
                 post_max: int = 83, post_center_range: Optional[Sequence[float]] = None, init_bias: float = -2.19):
        super().__init__()
        self.in_channels = in_channels
        self.class_names = list(class_names)
        self.task_labels, self.yaw_symmetry = [], []
        for t, task in enumerate(tasks):
            unknown = [c for c in task["class_names"] if c not in self.class_names]
            if unknown:
                raise ValueError(f"CenterHead: tasks[{t}] names classes {unknown} that are not among the dataset's "
                                 f"classes {self.class_names}")
            self.task_labels.append([self.class_names.index(c) for c in task["class_names"]])
            symmetry = task.get("yaw_symmetry", 1)
            if not (isinstance(symmetry, int) and symmetry >= 1):
                raise ValueError(f"CenterHead: tasks[{t}] yaw_symmetry is {symmetry!r}, expected an int >= 1")
            self.yaw_symmetry.append(symmetry)
        self.common_heads = dict(common_heads or DEFAULT_COMMON_HEADS)
        self.pc_range = [float(v) for v in point_cloud_range]
        self.out_cell = [float(v) for v in out_cell[:2]]
        self.grid_hw = (round((self.pc_range[4] - self.pc_range[1]) / self.out_cell[1]),
                        round((self.pc_range[3] - self.pc_range[0]) / self.out_cell[0]))
        self.num_codes = sum(self.common_heads[k] for k in CODE_ORDER if k in self.common_heads)
        if len(code_weights) != self.num_codes:
            raise ValueError(f"CenterHead: {len(code_weights)} code_weights for {self.num_codes} regression channels")
        self.register_buffer("code_weights", torch.tensor(code_weights, dtype=torch.float32), persistent=False)
        self.loss_bbox_weight, self.gaussian_overlap, self.min_radius = loss_bbox_weight, gaussian_overlap, min_radius
        if not (isinstance(reg_radius, int) and reg_radius >= 0):
            raise ValueError(f"CenterHead: reg_radius is {reg_radius!r}, expected an int >= 0")
        self.reg_radius = reg_radius
        if nms_radius_sq is None:  # the published radii for CenterPoint's six nuScenes tasks, else 4 m^2 each
            names = [list(task["class_names"]) for task in tasks]
            published = [list(group) for group in NUSCENES_TASK_NMS_RADIUS_SQ]
            nms_radius_sq = list(NUSCENES_TASK_NMS_RADIUS_SQ.values()) if names == published else [4.0] * len(tasks)
        self.nms_radius_sq = list(nms_radius_sq)
        if len(self.nms_radius_sq) != len(tasks):
            raise ValueError(f"CenterHead: {len(self.nms_radius_sq)} nms_radius_sq values for {len(tasks)} tasks")
        self.score_threshold, self.max_num, self.post_max = score_threshold, max_num, post_max
        self.post_center_range = post_center_range
        self.shared_conv = nn.Sequential(nn.Conv2d(in_channels, share_conv_channel, 3, padding=1, bias=False),
                                         nn.BatchNorm2d(share_conv_channel), nn.ReLU(inplace=True))
        self.task_heads = nn.ModuleList()
        for labels in self.task_labels:
            branches = {"heatmap": _branch(share_conv_channel, head_conv, len(labels), num_heatmap_convs, init_bias)}
            branches.update({k: _branch(share_conv_channel, head_conv, c, num_reg_convs)
                             for k, c in self.common_heads.items()})
            self.task_heads.append(nn.ModuleDict(branches))

    def forward(self, x: torch.Tensor) -> List[Dict[str, torch.Tensor]]:
        if tuple(x.shape[-2:]) != self.grid_hw:
            raise ValueError(f"CenterHead: input map is {tuple(x.shape[-2:])} cells, point_cloud_range / out_cell "
                             f"give {self.grid_hw}")
        x = self.shared_conv(x)
        # the first conv of every branch of every task reads the same map: one conv with their stacked weights
        # (same result as each branch on its own, tested; a third of the CPU step time of many thin convs)
        branches = [(t, name, branch) for t, head in enumerate(self.task_heads) for name, branch in head.items()]
        firsts = [branch[0] for _, _, branch in branches]
        weight = torch.cat([conv.weight for conv in firsts])
        bias = torch.cat([conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
                          for conv in firsts])
        maps = F.conv2d(x, weight, bias, padding=1).split([conv.out_channels for conv in firsts], 1)
        outs: List[Dict[str, torch.Tensor]] = [{} for _ in self.task_heads]
        for (t, name, branch), y in zip(branches, maps):
            outs[t][name] = branch[1:](y)
        return outs

    # ----------------------------------------------------------------------------------------------- targets
    def get_targets(self, boxes: Boxes3D, labels: torch.Tensor, device=None) -> List[Dict[str, torch.Tensor]]:
        """Targets of one sample per task: ``heatmap [n_task, H, W]``, ``num_boxes``, ``ind [M]`` (flat cell
        y * W + x of each box centre, and of its neighbours within ``reg_radius``), ``box [M, codes]`` (x, y offset
        of the centre from the cell, z, log l, log w, log h, sin yaw, cos yaw, vx, vy; the yaw times the task's
        ``yaw_symmetry``). Boxes whose centre falls outside the grid are skipped: the centre cell is the floor of
        the cell coordinate, so a centre in ``[x_min - cell, x_min)`` is outside, on purpose (mmdet3d's ``int()``
        truncation draws it at cell 0 when no ``ObjectRangeFilter`` has removed the box before)."""
        H, W = self.grid_hw
        t = boxes.tensor.double().cpu()
        labels = torch.as_tensor(labels).cpu()
        cx = (t[:, 0] - self.pc_range[0]) / self.out_cell[0]
        cy = (t[:, 1] - self.pc_range[1]) / self.out_cell[1]
        r = self.reg_radius
        offsets = [(dx, dy) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
        out = []
        for task_labels, symmetry in zip(self.task_labels, self.yaw_symmetry):
            heatmap = torch.zeros(len(task_labels), H, W)
            inds, codes, num_boxes = [], [], 0
            for i in range(len(t)):
                if int(labels[i]) not in task_labels:
                    continue
                ix, iy = int(np.floor(cx[i])), int(np.floor(cy[i]))
                if not (0 <= ix < W and 0 <= iy < H):
                    continue
                length, width = float(t[i, 3]) / self.out_cell[0], float(t[i, 4]) / self.out_cell[1]
                if length <= 0 or width <= 0:
                    continue
                radius = max(self.min_radius, int(gaussian_radius(length, width, self.gaussian_overlap)))
                draw_gaussian(heatmap[task_labels.index(int(labels[i]))], (ix, iy), radius)
                vel = t[i, 7:9] if t.shape[1] == 9 else torch.zeros(2, dtype=t.dtype)
                code = {"height": [t[i, 2]], "dim": t[i, 3:6].log().tolist(),
                        "rot": [torch.sin(symmetry * t[i, 6]), torch.cos(symmetry * t[i, 6])], "vel": vel.tolist()}
                num_boxes += 1
                for dx, dy in offsets:
                    if 0 <= ix + dx < W and 0 <= iy + dy < H:
                        code["reg"] = [cx[i] - ix - dx, cy[i] - iy - dy]
                        codes.append([float(v) for k in CODE_ORDER if k in self.common_heads for v in code[k]])
                        inds.append((iy + dy) * W + ix + dx)
            out.append(dict(heatmap=heatmap.to(device), num_boxes=num_boxes,
                            ind=torch.tensor(inds, dtype=torch.long, device=device),
                            box=torch.tensor(codes, dtype=torch.float32, device=device).reshape(len(inds), self.num_codes)))
        return out

    def loss(self, outs: List[Dict[str, torch.Tensor]], gt_boxes: Sequence[Boxes3D], gt_labels: Sequence
             ) -> Dict[str, torch.Tensor]:
        """Per task ``loss_heatmap_<t>`` (Gaussian focal, / max(1, #boxes)) and ``loss_bbox_<t>`` (L1 at the box
        centres (and neighbours) x code weights, / (#regression cells + 1e-4), x loss_bbox_weight), over a batch.
        A NaN target (a GT velocity without a neighbour in time) weighs 0.

        The heatmap term divides by the boxes drawn (CenterPoint's own code, tianweiy); mmdet3d's CenterHead
        divides by the heatmap cells equal to 1 instead, which differs only where two boxes of a task share
        a centre cell."""
        device = outs[0]["heatmap"].device
        targets = [self.get_targets(b, l, device) for b, l in zip(gt_boxes, gt_labels)]
        losses = {}
        for t, out in enumerate(outs):
            heat = torch.sigmoid(out["heatmap"].float()).clamp(1e-4, 1 - 1e-4)
            heat_t = torch.stack([tg[t]["heatmap"] for tg in targets])
            num = sum(tg[t]["num_boxes"] for tg in targets)
            losses[f"loss_heatmap_{t}"] = gaussian_focal_loss(heat, heat_t) / max(1, num)
            reg = torch.cat([out[k] for k in CODE_ORDER if k in self.common_heads], 1).float()
            B, C = reg.shape[:2]
            reg = reg.view(B, C, -1)
            pred = torch.cat([reg[b, :, tg[t]["ind"]].T for b, tg in enumerate(targets)])
            target = torch.cat([tg[t]["box"] for tg in targets])
            known = torch.isfinite(target)  # a NaN velocity (no neighbour in time) is not taught
            l1 = ((pred - target.nan_to_num()).abs() * self.code_weights * known).sum()
            losses[f"loss_bbox_{t}"] = self.loss_bbox_weight * l1 / (len(target) + 1e-4)
        return losses

    # ---------------------------------------------------------------------------------------------- decoding
    @torch.no_grad()
    def predict(self, outs: List[Dict[str, torch.Tensor]]) -> List[InstanceData]:
        """Boxes per sample: ``bboxes_3d`` (Boxes3D ``[M, 9]``, LiDAR frame of the BEV map), ``scores_3d``,
        ``labels_3d`` (indices into ``class_names``). Per task: top ``max_num`` heatmap cells over its classes,
        scores above ``score_threshold``, centres inside ``post_center_range``, circle NMS, ``post_max``."""
        B = outs[0]["heatmap"].shape[0]
        H, W = self.grid_hw
        results = [[] for _ in range(B)]
        for t, out in enumerate(outs):
            heat = torch.sigmoid(out["heatmap"].float())
            n_cls = heat.shape[1]
            for b in range(B):
                scores, flat = heat[b].reshape(-1).topk(min(self.max_num, n_cls * H * W))
                keep = scores > self.score_threshold
                scores, flat = scores[keep], flat[keep]
                cls, cell = flat // (H * W), flat % (H * W)
                iy, ix = cell // W, cell % W
                get = {k: out[k][b].float().reshape(out[k].shape[1], -1)[:, cell].T for k in self.common_heads}
                x = (ix.float() + get["reg"][:, 0]) * self.out_cell[0] + self.pc_range[0]
                y = (iy.float() + get["reg"][:, 1]) * self.out_cell[1] + self.pc_range[1]
                dims = get["dim"].clamp(max=5.0).exp()
                yaw = torch.atan2(get["rot"][:, 0], get["rot"][:, 1]) / self.yaw_symmetry[t]
                vel = get["vel"] if "vel" in get else torch.zeros(len(x), 2, device=x.device)
                boxes = torch.cat([torch.stack([x, y, get["height"][:, 0]], 1), dims, yaw[:, None], vel], 1)
                if self.post_center_range is not None:
                    r = torch.as_tensor(self.post_center_range, dtype=boxes.dtype, device=boxes.device)
                    inside = ((boxes[:, :3] >= r[:3]) & (boxes[:, :3] <= r[3:])).all(1)
                    boxes, scores, cls = boxes[inside], scores[inside], cls[inside]
                keep = circle_nms(boxes[:, :2], scores, self.nms_radius_sq[t], self.post_max)
                labels = torch.as_tensor(self.task_labels[t], device=cls.device)[cls[keep]]
                results[b].append((boxes[keep], scores[keep], labels))
        out_list = []
        for per_task in results:
            boxes = torch.cat([r[0] for r in per_task])
            out_list.append(InstanceData(bboxes_3d=Boxes3D(boxes.detach().cpu().double(), with_velocity=True),
                                         scores_3d=torch.cat([r[1] for r in per_task]).cpu(),
                                         labels_3d=torch.cat([r[2] for r in per_task]).cpu()))
        return out_list
