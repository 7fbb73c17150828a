# pc_kd: `make demo` runs the image -> 3D distillation demo (`make demo-full`: 3 seeds), `make demo-bev` the BEV
# detection demo; `make test` runs the test suite.
# Both create .venv on first use. TORCH picks the torch build (CPU wheel by default; a CUDA machine can
# pass e.g. TORCH="torch==2.13.0 --index-url <your CUDA index>"). For the ScanNet / S3DIS configs' timm teacher:
# make install TORCH="torch==2.13.0 torchvision==0.28.0" EXTRAS=spconv,test,vis,teachers
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
EXTRAS ?= spconv,test,vis
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pc_kd-installed
PYTEST_ARGS ?=

.PHONY: install test demo demo-full demo-bev demo-bev-distill demo-real demo-real-teachers demo-drive-segment demo-partdistill demo-pretrain demo-supervised teacher clean

$(STAMP): setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

test: install
	OMP_NUM_THREADS=2 $(PY) -m pytest -q -ra $(PYTEST_ARGS)

demo: install
	$(PY) tools/demo.py --work-dir work_dirs/demo

demo-full: install
	$(PY) tools/demo.py --work-dir work_dirs/demo_full --seeds 0 1 2

# BEV detection: LiDAR, camera and fusion detectors on synthetic driving scenes, scored with the nuScenes metric.
demo-bev: install
	$(PY) tools/demo_bev.py --work-dir work_dirs/demo_bev

# Cross-modal BEV distillation (UniDistill's four paths, and LiDAR -> camera at 10 / 5 / 10) against paired
# baselines, 5 seeds, scored on the validation and on 128 held-out frames; hours on 2 cores, resumable (a rerun
# reuses every finished run).
demo-bev-distill: install
	$(PY) tools/demo_bev.py --work-dir work_dirs/demo_bev_distill --seeds 0 1 2 3 4 --detectors lidar camera fusion \
		--distill lidar_to_camera_fc_weights fusion_to_lidar lidar_to_camera fusion_to_camera camera_to_lidar_t2 \
		camera_to_lidar lidar_to_camera_unidistill_weights

# REAL nuScenes: two scenes ($$PC_KD_REAL_DATA/nuscenes_2scenes, or NUSCENES_ROOT=<folder>) converted, the LiDAR,
# camera and fusion detectors trained on scene-0523 and scored on scene-0916 by pc_kd's metric and the devkit's
# DetectionEval; about 50 minutes on 2 cores, resumable (a rerun reuses every finished run).
NUSCENES_ROOT ?=
demo-real: install
	$(PY) tools/demo_real.py --work-dir work_dirs/demo_real $(if $(NUSCENES_ROOT),--nuscenes-root $(NUSCENES_ROOT))

# REAL pretrained 2D teachers (ESPNetv2): the PASCAL VOC network fused into ScanNet scene0000_00's 100 RGB-D frames
# with three visibility tests, zero-shot labels scored against ScanNet's; the Cityscapes network fused into the
# LiDAR points of two nuScenes scenes and distilled into a point student (scene-0523), scored on scene-0916. About
# 40 minutes on 2 cores, resumable (a rerun reuses the fused features and the finished students).
demo-real-teachers: install
	$(PY) tools/demo_real_teachers.py --work-dir work_dirs/demo_real_teachers

# Drive&Segment (3D -> 2D): LiDAR segment proposals of synthetic driving frames clustered into pseudo-classes
# through a label-free backbone, a 2D student trained on them; 3 seeds, scored on frames of another seed beside the
# trivial baselines. About 25 minutes on 2 cores, resumable (a rerun reuses the frames and the finished seeds).
demo-drive-segment: install
	$(PY) tools/demo_drive_segment.py --work-dir work_dirs/demo_drive_segment

# PartDistill (2D parts -> 3D): a faulty synthetic 2D part-box predictor distilled into a spconv point student,
# forward and backward distillation, chairs / tables / lamps, 3 seeds, beside the teacher's vote and a supervised
# upper bound. About 40 minutes on 2 cores, resumable (a rerun reuses the shape sets and the finished categories and
# seeds).
demo-partdistill: install
	$(PY) tools/demo_partdistill.py --work-dir work_dirs/demo_partdistill

# ACT and ReCon (2D -> 3D masked point modelling): a point transformer pretrained from a 2D depth ViT on unlabelled
# synthetic objects, a linear SVM on six held-out classes beside a D2 histogram, the raw 2D teacher, a random-init
# encoder and Point-MAE; 3 seeds. About 22 minutes on 2 cores, resumable (a rerun skips the finished methods and seeds).
demo-pretrain: install
	$(PY) tools/demo_pretrain.py --work-dir work_dirs/demo_pretrain

# Re-make the demo's 2D teacher (checkpoints/) from its own rooms; minutes on 2 cores.
teacher: install
	$(PY) tools/train_image_teacher.py configs/pointdc/pointdc_spconv-unet_tinysegnet_synthetic-indoor.py

demo-supervised: install
	$(PY) tools/demo_supervised.py --work-dir work_dirs/demo_supervised

clean:
	rm -rf $(VENV) work_dirs data/synthetic_indoor data/synthetic_indoor_distill data/synthetic_driving
