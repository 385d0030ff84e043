"""The strict protocol's final pick rules (nar/search.py): near ties within a validation margin,
and how training cells, which a ranker scores optimistically, may win them."""
import numpy as np

from nar.search import heldout_pick, margin_pick, robust_pick, search_first_pick


def test_margin_pick_breaks_near_ties_by_score():
    sel = np.array([90.0, 91.0, 90.95, 89.0, np.nan])
    score = np.array([5.0, 1.0, 2.0, 9.0, 10.0])
    assert margin_pick(sel, score, 0.0) == 1 and margin_pick(sel, None, 0.5) == 1
    assert margin_pick(sel, score, 0.1) == 2   # 90.95 is tied with 91.0 and scores higher
    assert margin_pick(sel, score, 1.0) == 0   # the NaN row is never picked


def test_robust_pick_never_lets_a_training_cell_win_by_score():
    # the case: a training cell 0.05 below the searched optimum, scored optimistically
    sel = np.array([91.54, 91.20, 91.61, 91.57])
    score = np.array([9.0, 8.0, 1.0, 2.0])
    trained = np.array([True, True, False, False])
    assert margin_pick(sel, score, 0.1) == 0            # version 1: the training cell wins by score
    assert robust_pick(sel, score, trained, 0.1) == 3   # searched cells tie among themselves only
    assert robust_pick(sel, score, trained, 0.0) == 2
    assert robust_pick(np.array([92.0, 91.0, 91.95]), np.array([0.0, 5.0, 9.0]), np.array([True, False, False]),
                       0.1) == 0                        # strictly better validation: the training cell
    assert robust_pick(sel, score, np.zeros(4, bool), 0.1) == 0  # nothing trained: version 1


def test_heldout_pick_scores_tied_cells_without_their_labels():
    sel = np.array([91.54, 91.20, 91.50, 91.57])   # rows 10, 11 trained; 12, 13 searched
    score = np.array([9.0, 8.0, 1.0, 2.0])          # the search ranker's (optimistic on 10, 11)
    trained, rows, asked = np.array([True, True, False, False]), [10, 11, 12, 13], []

    def refit(excluded, tied_rows):
        asked.append((excluded, tied_rows))
        return np.array([{10: 0.1, 12: 0.9, 13: 0.5}[r] for r in tied_rows])

    assert heldout_pick(sel, score, trained, 0.1, rows, refit) == 2   # 12 wins once 10 is held out
    assert asked == [((10,), (10, 12, 13))]
    assert heldout_pick(sel, score, trained, 0.02, rows, refit) == 3  # no training cell tied: no refit
    assert len(asked) == 1 and heldout_pick(sel, score, trained, 0.0, rows, refit) == 3


def test_search_first_pick_prefers_tied_searched_cells():
    sel = np.array([91.54, 91.53, 91.50, 91.20])   # two training cells, then two searched cells
    score = np.array([9.0, 8.0, 1.0, 5.0])
    trained = np.array([True, True, False, False])
    assert search_first_pick(sel, score, trained, 0.1) == 2   # the tied searched cell, not the scores 9/8
    assert search_first_pick(sel, score, trained, 0.02) == 0  # training cells only: score decides
    assert search_first_pick(sel, score, trained, 0.0) == 0
