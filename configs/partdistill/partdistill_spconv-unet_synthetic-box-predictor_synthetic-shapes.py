# PartDistill on synthetic part-labelled shapes (pc_kd.experiments.partdistill.Settings; `make demo-partdistill`):
# chairs (seat, back, leg, arm), tables (top, leg, support), lamps (base, pole, shade) of random proportions, 2048
# surface points in the unit sphere; 10 views; a synthetic 2D part-box predictor that misses 30 % of the parts,
# relabels 20 % wrongly with the same confidence distribution, grows every box by 10-20 % and adds a whole-object
# box to 30 % of the views (dropped by the 98 % rule); a spconv U-Net point student per category, 25 epochs of
# batch 16 (Adam 3e-3, cosine to 3e-5), the last epoch scored; 200 training shapes (seed 0), 60 test shapes (seed 1).
settings = dict(
    categories=("chair", "table", "lamp"), train_shapes=200, test_shapes=60, num_points=2048, num_views=10,
    image_hw=(128, 128), train_seed=0, test_seed=1, miss=0.3, wrong=0.2, whole_object=0.3, epochs=25, batch_size=16,
    lr=3e-3, voxel_size=0.04, channels=(16, 32, 64, 128), plateau_window=5, plateau_tol=0.01,
)
