"""Training helpers: class weights for skewed training splits."""

import numpy as np
import pytest

from lowrank_edge.model.train import balanced_class_weights


def test_balanced_weights_equalise_class_totals():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    weights = balanced_class_weights(labels, num_classes=4)
    totals = [weights[c] * np.sum(labels == c) for c in range(3)]
    np.testing.assert_allclose(totals, [100 / 4] * 3)  # every present class weighs n / k
    assert weights[3] == 0.0  # absent class
    assert weights[2] == pytest.approx(100 / (4 * 10))
