"""ModelNet40 / ScanObjectNN h5 readers on small files written in their layouts (and their bad input), the
linear-SVM probe on separable and label-shuffled features, and the D2 histogram against a per-pair loop and under
rotation and translation."""
import h5py
import numpy as np
import pytest

from pc_kd.datasets.object_h5 import read_modelnet40_h5, read_scanobjectnn_h5
from pc_kd.evaluation import d2_histogram, svm_probe


def _modelnet(root, g):
    root.mkdir()
    (root / "shape_names.txt").write_text("airplane\nbathtub\nbed\n")
    written = {}
    for split, files in (("train", ["ply_data_train0.h5", "ply_data_train1.h5"]), ("test", ["ply_data_test0.h5"])):
        (root / f"{split}_files.txt").write_text("".join(f"data/modelnet40_ply_hdf5_2048/{f}\n" for f in files))
        for k, name in enumerate(files):
            data = g.standard_normal((3 + k, 16, 3)).astype(np.float32)
            label = g.integers(0, 3, (3 + k, 1)).astype(np.uint8)
            with h5py.File(root / name, "w") as f:
                f["data"], f["label"] = data, label
                f["normal"] = np.zeros_like(data)
            written[name] = (data, label)
    return written


def test_modelnet40_reader_concatenates_the_listed_files_in_order(tmp_path):
    g = np.random.default_rng(0)
    written = _modelnet(tmp_path / "mn40", g)
    train = read_modelnet40_h5(tmp_path / "mn40", "train")
    assert train["classes"] == ["airplane", "bathtub", "bed"]
    assert train["points"].shape == (7, 16, 3) and train["points"].dtype == np.float32
    np.testing.assert_array_equal(train["points"], np.concatenate([written["ply_data_train0.h5"][0],
                                                                   written["ply_data_train1.h5"][0]]))
    np.testing.assert_array_equal(train["labels"], np.concatenate([written["ply_data_train0.h5"][1],
                                                                   written["ply_data_train1.h5"][1]]).reshape(-1))
    assert read_modelnet40_h5(tmp_path / "mn40", "test")["labels"].shape == (3,)
    with pytest.raises(FileNotFoundError, match="shape_names.txt"):
        read_modelnet40_h5(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be"):
        read_modelnet40_h5(tmp_path / "mn40", "val")
    with h5py.File(tmp_path / "mn40" / "ply_data_test0.h5", "a") as f:
        del f["label"]
        f["label"] = np.full((3, 1), 7, np.uint8)
    with pytest.raises(ValueError, match="labels span 7..7 but shape_names.txt names 3 classes"):
        read_modelnet40_h5(tmp_path / "mn40", "test")


def test_scanobjectnn_reader_and_missing_fields(tmp_path):
    g = np.random.default_rng(1)
    data = g.standard_normal((4, 20, 3)).astype(np.float32)
    with h5py.File(tmp_path / "training_objectdataset.h5", "w") as f:
        f["data"], f["label"], f["mask"] = data, np.array([0, 3, 1, 14]), g.integers(0, 2, (4, 20))
    out = read_scanobjectnn_h5(tmp_path / "training_objectdataset.h5")
    np.testing.assert_array_equal(out["points"], data)
    assert out["labels"].tolist() == [0, 3, 1, 14] and out["mask"].shape == (4, 20)
    with h5py.File(tmp_path / "nolabel.h5", "w") as f:
        f["data"] = data
    with pytest.raises(KeyError, match=r"nolabel\.h5: missing datasets \['label'\]"):
        read_scanobjectnn_h5(tmp_path / "nolabel.h5")
    with h5py.File(tmp_path / "short.h5", "w") as f:
        f["data"], f["label"] = data, np.zeros(3)
    with pytest.raises(ValueError, match="3 labels for 4 shapes"):
        read_scanobjectnn_h5(tmp_path / "short.h5")
    with pytest.raises(FileNotFoundError):
        read_scanobjectnn_h5(tmp_path / "none.h5")


def test_svm_probe_separates_separable_features_and_not_shuffled_labels():
    g = np.random.default_rng(2)
    centres = g.standard_normal((4, 16)) * 4
    labels = np.repeat(np.arange(4), 50)
    feats = centres[labels] + g.standard_normal((200, 16))
    train, test = np.arange(200) % 2 == 0, np.arange(200) % 2 == 1
    assert svm_probe(feats[train], labels[train], feats[test], labels[test]) == 1.0
    shuffled = g.permutation(labels)
    assert svm_probe(feats[train], shuffled[train], feats[test], shuffled[test]) < 0.5  # chance is 0.25
    with pytest.raises(ValueError, match="fewer than 2 classes"):
        svm_probe(feats[:5], np.zeros(5), feats[:5], np.zeros(5))
    with pytest.raises(ValueError, match=r"\[N, D\] and \[M, D\]"):
        svm_probe(feats, labels, feats[:, :3], labels)


def test_d2_histogram_against_a_pair_loop_and_invariant_to_rigid_motion():
    g = np.random.default_rng(3)
    points = g.uniform(-0.5, 0.5, (2, 30, 3))
    hist = d2_histogram(points, bins=8, pairs=500, seed=4)
    assert hist.shape == (2, 8) and np.allclose(hist.sum(1), 1.0)
    i, j = np.random.default_rng(4).integers(0, 30, (2, 500))
    for s in range(2):
        counts = np.zeros(8)
        for a, b in zip(i, j):
            d = np.sqrt(((points[s, a] - points[s, b]) ** 2).sum())
            counts[min(int(d / 0.25), 7)] += 1
        np.testing.assert_allclose(hist[s], counts / 500)
    theta = 0.7
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    moved = points @ rot.T + np.array([3.0, -1.0, 2.0])
    np.testing.assert_allclose(d2_histogram(moved, bins=8, pairs=500, seed=4), hist)
    with pytest.raises(ValueError, match=r"\[S, N >= 2, 3\]"):
        d2_histogram(points[:, :1])


def test_a_modelnet40_layout_goes_through_grouping_and_the_probe_of_a_pretrained_encoder(tmp_path):
    import torch

    from pc_kd.experiments import masked_pretraining as mp
    from pc_kd.models.pretrainers import ACTDistiller

    _modelnet(tmp_path / "mn40", np.random.default_rng(0))
    s = mp.Settings(num_groups=4, group_size=4)
    train, test = (read_modelnet40_h5(tmp_path / "mn40", split) for split in ("train", "test"))
    grouped = mp.group_points(train["points"], train["labels"], train["classes"], s)
    assert grouped.neighbourhoods.shape == (7, 4, 4, 3) and grouped.classes == ("airplane", "bathtub", "bed")
    absolute = grouped.neighbourhoods + grouped.centres[:, :, None]  # every grouped point is one of its shape's
    gap = np.linalg.norm(absolute.reshape(7, -1, 1, 3) - train["points"][:, None], axis=-1).min(-1)
    assert gap.max() < 1e-6
    torch.manual_seed(0)
    encoder = ACTDistiller(None, dim=16, depth=1, num_heads=2, tokenizer_hidden=(8, 8, 16)).eval()
    feats = mp.encoder_features(encoder, grouped)
    assert feats.shape == (7, 32) and np.isfinite(feats).all()
    with pytest.raises(ValueError, match=r"points must be \[S, N, 3\] with one label each"):
        mp.group_points(test["points"], test["labels"][:2], test["classes"], s)
