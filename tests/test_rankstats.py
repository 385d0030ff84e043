"""nar.rankstats gives scipy.stats' figures value for value (ties, constant inputs, NaN), by
hand on small cases, and training no longer imports scipy."""
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from nar.rankstats import _inversions, kendalltau, rankdata, spearmanr
from tests.conftest import REPO


def _same(a, b) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == b


def test_hand_computed():
    # 4 items, one swapped pair: (6 - 2 * 1) / 6
    assert kendalltau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert kendalltau([1, 2, 3], [3, 2, 1]) == -1.0
    # ties in x only: tot 3, xtie 1, ytie 0, concordant 2, discordant 0 -> 2 / sqrt(2 * 3)
    assert kendalltau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / np.sqrt(6))
    assert rankdata([3, 1, 3, 2]).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert rankdata([3, 1, 3, 2], method="min").tolist() == [3, 1, 3, 2]
    assert spearmanr([1, 2, 3], [1, 2, 3]) == 1.0


def test_inversions_against_brute_force():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 7, 64, 65, 200):
        v = rng.integers(0, max(1, n // 3), n)
        brute = sum(int(v[i] > v[j]) for i in range(n) for j in range(i + 1, n))
        assert _inversions(v) == brute, n


def test_degenerate_inputs_are_nan():
    for x, y in (([1.0], [2.0]), ([1, 1, 1], [1, 2, 3]), ([1, 2, 3], [5, 5, 5]), ([1, np.nan, 3], [1, 2, 3])):
        assert np.isnan(kendalltau(x, y)) and np.isnan(spearmanr(x, y))
    with pytest.raises(ValueError):
        kendalltau([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        rankdata([1, 2], method="dense")


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 120), st.integers(1, 40), st.booleans(), st.integers(0, 2 ** 31))
def test_equals_scipy_value_for_value(n, levels, continuous, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n) if continuous else rng.integers(0, levels, n).astype(float)
    y = np.round(x + rng.normal(size=n), 1) if seed % 2 else rng.integers(0, levels, n).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)  # scipy warns where both give NaN
        assert _same(kendalltau(x, y), stats.kendalltau(x, y).statistic)
        assert _same(spearmanr(x, y), stats.spearmanr(x, y).statistic)
    for method in ("average", "min"):
        assert np.array_equal(rankdata(x, method), stats.rankdata(x, method=method))


def test_large_input_equals_scipy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=50_000)
    y = np.round(x + rng.normal(size=50_000), 2)  # many ties in y
    assert kendalltau(x, y) == stats.kendalltau(x, y).statistic
    assert spearmanr(x, y) == stats.spearmanr(x, y).statistic


def test_training_code_does_not_import_scipy():
    code = ("import sys; import nar.harness, nar.evaluate, nar.train, nar.baselines, nar.sweep.cell; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
