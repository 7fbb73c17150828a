# ACT and its random-init baseline on synthetic objects (pc_kd.experiments.masked_pretraining.Settings;
# `make demo-pretrain`): the same 2004 unlabelled shapes and groups as configs/recon/. Stage I: mini-PointNet
# tokens -> edge conv (k = 4) -> 512-code Gumbel-softmax (tau cosine 1 -> 0.0625, KL weight cosine 0 -> 0.1) ->
# the shipped depth ViT's 4 FROZEN blocks with 8 deep prompts per layer -> edge conv -> FoldingNet (8 coarse, 32
# fine points), CD-L1, 2 epochs. Stage II: CLS + visible tokens through 4 blocks (128 wide, 4 heads), random mask
# 0.8, a 2-block decoder regressing the frozen stage I's hard-sampled latents of the hidden groups (1 - cos; the
# targets centred over the batch), 3 epochs. Probe: LinearSVC (C = 0.075) on [CLS, max + mean of locals].
settings = dict(methods=("random-init", "act"))
