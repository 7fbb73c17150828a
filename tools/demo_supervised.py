"""The embedded default, end to end: generate synthetic rooms, train the spconv U-Net, test it, draw it.

    python tools/demo_supervised.py [--work-dir work_dirs/demo_supervised] [--config CONFIG] [--cfg-options k=v ...]

Writes checkpoints and logs to the work dir, prints the test mIoU, and saves ``bev_prediction.png``
(ground truth next to the prediction, seen from above, for the first validation scene).
"""
import argparse
import os.path as osp

from mmengine.logging import print_log

from pc_kd.engine import add_runner_args, build_runner, load_config, predict_first_test_sample
from pc_kd.visualization import plot_bev_labels

DEFAULT_CONFIG = osp.join(osp.dirname(__file__), "..", "configs", "supervised",
                          "supervised_spconv-unet_none_synthetic-indoor.py")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="supervised config to train (default: the synthetic rooms)")
    add_runner_args(parser)
    args = parser.parse_args(argv)
    args.work_dir = args.work_dir or "work_dirs/demo_supervised"
    cfg = load_config(args)
    runner = build_runner(cfg, args.config)
    runner.train()
    metrics = runner.test()
    batch, sample = predict_first_test_sample(runner)
    dataset = runner.test_dataloader.dataset
    points = batch["inputs"]["points"][0].numpy()
    classes = dataset.metainfo["classes"]
    png = plot_bev_labels(points, [sample.gt_pts_seg.pts_semantic_mask.numpy(),
                                   sample.pred_pts_seg.pts_semantic_mask.numpy()],
                          ["ground truth", f"prediction (test mIoU {metrics['seg/miou'] * 100:.1f})"], classes,
                          osp.join(args.work_dir, "bev_prediction.png"), max_height=2.0)
    print_log(f"test mIoU {metrics['seg/miou'] * 100:.2f} %, oAcc {metrics['seg/oacc'] * 100:.2f} %; "
              f"picture: {png}", "current")
    return metrics


if __name__ == "__main__":
    from pc_kd.engine import exit_on_user_error

    with exit_on_user_error():
        main()
