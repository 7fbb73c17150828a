"""The linear-probe protocol of masked point modelling (ReCon's ``runner_svm``): a linear SVM on frozen features of
held-out shapes, and the D2 shape histogram, the trivial hand-made baseline beside it."""
import numpy as np


def svm_probe(train_feats, train_labels, test_feats, test_labels, C: float = 0.075) -> float:
    """Overall accuracy on ``test_feats [M, D]`` of scikit-learn's ``LinearSVC(C=C)`` fitted on ``train_feats
    [N, D]`` / ``train_labels [N]`` (C = 0.075 as ReCon's SVM evaluation; features used as given)."""
    from sklearn.svm import LinearSVC

    train_feats, test_feats = np.asarray(train_feats, np.float64), np.asarray(test_feats, np.float64)
    train_labels, test_labels = np.asarray(train_labels).reshape(-1), np.asarray(test_labels).reshape(-1)
    if train_feats.ndim != 2 or test_feats.ndim != 2 or train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f"svm_probe: features must be [N, D] and [M, D], got {train_feats.shape} and "
                         f"{test_feats.shape}")
    if len(train_feats) != len(train_labels) or len(test_feats) != len(test_labels):
        raise ValueError(f"svm_probe: {len(train_feats)} / {len(test_feats)} feature rows for {len(train_labels)} / "
                         f"{len(test_labels)} labels")
    if len(np.unique(train_labels)) < 2:
        raise ValueError("svm_probe: the training labels hold fewer than 2 classes")
    clf = LinearSVC(C=C, max_iter=20000).fit(train_feats, train_labels)
    return float((clf.predict(test_feats) == test_labels).mean())


def d2_histogram(points, bins: int = 32, pairs: int = 4096, max_distance: float = 2.0, seed: int = 0) -> np.ndarray:
    """``[S, bins]`` D2 shape distributions (Osada et al. 2002) of ``points [S, N, 3]``: per shape the normalised
    histogram of the distances between ``pairs`` random point pairs over ``[0, max_distance]`` (2: the diameter of
    the unit sphere; farther pairs fall in the last bin). Invariant to rotation and translation; ``seed`` fixes the
    pairs."""
    points = np.asarray(points, np.float64)
    if points.ndim != 3 or points.shape[-1] != 3 or points.shape[1] < 2:
        raise ValueError(f"d2_histogram: points must be [S, N >= 2, 3], got {points.shape}")
    g = np.random.default_rng(seed)
    s, n, _ = points.shape
    i, j = g.integers(0, n, (2, pairs))
    dist = np.linalg.norm(points[:, i] - points[:, j], axis=-1)  # [S, pairs]
    edges = np.linspace(0, max_distance, bins + 1)
    idx = np.clip(np.searchsorted(edges, dist, side="right") - 1, 0, bins - 1)
    out = np.zeros((s, bins))
    np.add.at(out, (np.repeat(np.arange(s), pairs), idx.reshape(-1)), 1.0)
    return out / pairs
