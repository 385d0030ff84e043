"""Ranking metrics and tiers against hand-computed cases and scipy."""
import numpy as np
import pytest
from scipy import stats

from nar.metrics import assign_tiers, ranking_metrics, tier_labels, tier_thresholds
from pipeline.errors import NarError


def test_hand_computed_small_case():
    # target ranks (1 = best): a=1, b=2, c=3, d=4; the score swaps b and c
    target = [90.0, 80.0, 70.0, 60.0]
    score = [4.0, 2.0, 3.0, 1.0]
    m = ranking_metrics(score, target)
    # 6 pairs, 1 discordant -> tau = (5 - 1) / 6
    assert m["kendalltau"] == pytest.approx(4 / 6)
    # rank differences 0, 1, 1, 0 -> rho = 1 - 6 * 2 / (4 * 15)
    assert m["spearman"] == pytest.approx(1 - 12 / 60)
    assert m["precision_10"] == 1.0 and m["precision_100"] == 1.0  # K capped at n = 4
    assert m["n_at_10"] == 1
    assert m["tier_accuracy"] is None
    assert m["n"] == 4


def test_reversed_scores_and_n_at_k():
    target = np.arange(30, dtype=float)  # index 29 is the best
    m = ranking_metrics(-target, target)
    assert m["kendalltau"] == pytest.approx(-1.0)
    assert m["spearman"] == pytest.approx(-1.0)
    assert m["precision_10"] == 0.0
    # the predicted top 10 are the 10 worst: true ranks 21..30
    assert m["n_at_10"] == 21


def test_precision_counts_overlap():
    rng = np.random.default_rng(0)
    target = rng.permutation(200).astype(float)
    score = target.copy()
    best = np.argsort(-target)
    # push 3 of the true top 10 down to the bottom of the score
    score[best[[0, 4, 9]]] = -1000 - np.arange(3)
    m = ranking_metrics(score, target)
    assert m["precision_10"] == pytest.approx(7 / 10)
    assert m["n_at_10"] == 2  # rank 1 was pushed out, rank 2 remains
    assert m["precision_100"] == pytest.approx(97 / 100)


def test_matches_scipy_with_ties_and_nan():
    rng = np.random.default_rng(1)
    target = np.round(rng.normal(70, 5, 300), 0)  # many ties -> tau-b matters
    score = target + rng.normal(0, 4, 300)
    target_nan = target.copy()
    target_nan[[3, 50, 299]] = np.nan
    m = ranking_metrics(score, target_nan)
    keep = ~np.isnan(target_nan)
    assert m["n"] == 297
    assert m["kendalltau"] == pytest.approx(stats.kendalltau(score[keep], target[keep], variant="b").statistic)
    assert m["spearman"] == pytest.approx(stats.spearmanr(score[keep], target[keep]).statistic)


def test_tier_accuracy_drops_nan_rows():
    target = [1.0, 2.0, np.nan, 4.0]
    m = ranking_metrics([1, 2, 3, 4], target, pred_tier=[1, 2, 3, 3], true_tier=[1, 1, 1, 3])
    assert m["tier_accuracy"] == pytest.approx(2 / 3)
    assert isinstance(m["tier_accuracy"], float)


def test_bad_input_raises():
    with pytest.raises(NarError, match="score has 2 values but target has 3"):
        ranking_metrics([1, 2], [1, 2, 3])
    with pytest.raises(NarError, match="at least 2"):
        ranking_metrics([1, 2], [1, np.nan])
    with pytest.raises(NarError, match="not finite"):
        ranking_metrics([1, np.nan, 3], [1, 2, 3])
    with pytest.raises(NarError, match="both pred_tier and true_tier"):
        ranking_metrics([1, 2], [1, 2], pred_tier=[1, 1])


def test_tier_labels_equal_groups_last_takes_remainder():
    acc = np.array([50, 99, 10, 70, 80, 20, 30, 60, 40, 90, 5, 1], dtype=float)  # 12 -> 5 tiers of 2, last 4
    tiers = tier_labels(acc, 5)
    order = np.argsort(-acc)
    assert tiers[order].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 5]
    assert tiers[1] == 1 and tiers[11] == 5
    assert np.bincount(tiers).tolist() == [0, 2, 2, 2, 2, 4]


def test_thresholds_reproduce_training_tiers_and_assign_new():
    rng = np.random.default_rng(2)
    acc = rng.normal(90, 3, 103)
    thr = tier_thresholds(acc, 5)
    assert thr.shape == (4,) and np.all(np.diff(thr) < 0)
    assert np.array_equal(assign_tiers(acc, thr), tier_labels(acc, 5))
    new = np.array([1000.0, -1000.0, thr[0], np.nan, (thr[1] + thr[2]) / 2])
    assert assign_tiers(new, thr).tolist() == [1, 5, 1, 0, 3]


def test_tier_errors():
    with pytest.raises(NarError, match="cannot cut 3 architectures into 5 tiers"):
        tier_labels([1, 2, 3], 5)
    with pytest.raises(NarError, match="NaN at index 1"):
        tier_labels([1, np.nan, 3, 4, 5], 5)
