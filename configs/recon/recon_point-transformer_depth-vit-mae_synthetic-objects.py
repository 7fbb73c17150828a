# ReCon and its reconstruction-only ablation (Point-MAE's loss on the same network) on synthetic objects
# (pc_kd.experiments.masked_pretraining.Settings; `make demo-pretrain`): 2004 unlabelled shapes of table, bed,
# bookshelf, box, sphere, cone (1024 points, 64 FPS groups x 32 nearest points); 3 global queries (cls, img, text)
# and the visible tokens through 4 ReCon blocks (128 wide, 4 heads), random mask 0.6, a 2-block decoder; losses:
# CD-L2 of the hidden groups + Smooth-L1 of the img query against the shipped depth ViT's CLS of one depth render
# + Smooth-L1 of the text query against the shipped trigram embedding of "a point cloud of a <category>".
# AdamW 1e-3 (wd 0.05, one-cycle cosine), batch 32, 3 epochs. Probe: LinearSVC (C = 0.075) on [max of globals,
# max + mean of locals] of chair, sofa, cabinet, lamp, cylinder, torus (402 training / 204 test shapes; clean and
# ScanObjectNN-like).
settings = dict(methods=("point-mae", "recon"))
