"""The query-efficient loop skips cells that are the same network as a queried one
(``SearchSpace.equivalence_codes``; NB201: ``pipeline.nb201_equivalence``)."""
import numpy as np
import pytest

from cache.store import Store
from nar.search import open_context
from tests.conftest import REPO
from tests.fakes import fake_store_201


@pytest.fixture(scope="module")
def ctx201(tmp_path_factory):
    return open_context(Store(fake_store_201(tmp_path_factory.mktemp("s") / "s201.h5", n=1500)), "cifar10")


def test_iterative_mode_never_queries_the_same_network_twice(ctx201):
    from nar.iterative import iterative_search

    cls = ctx201.pool.space.equivalence_codes(ctx201.pool)
    size = np.bincount(cls)[cls]
    score = size + 1e-3 * np.nan_to_num(ctx201.select, nan=0.0)  # the largest classes first

    class ClassSize:  # a predictor that scores classmates alike (nearly): a round would take them together
        def fit(self, store, rows, labels):
            return self

        def predict(self, store, rows):
            return score[rows]

    runs = {skip: iterative_search(ctx201, ClassSize(), budget=80, init_size=20, query_step=10, seed=1,
                                   skip_equivalent=skip)[0] for skip in (True, False)}
    assert len(runs[True]) == len(runs[False]) == 80
    assert (size > 1).any()  # the fake holds classes of several cells
    assert len(np.unique(cls[runs[True]])) == 80 > len(np.unique(cls[runs[False]]))
    # with the skip, a round queries the best cell of each class it takes (here: by select)
    for r in runs[True][20:]:
        mates = np.flatnonzero(cls == cls[r])
        assert ctx201.select[r] >= np.nanmax(ctx201.select[mates]) - 1e-9 or np.isnan(ctx201.select[r])


def test_sample_reads_sampler_skip_equivalent(tmp_path):
    import json

    from nar.search_run import run_sample

    path = fake_store_201(tmp_path / "s201.h5", n=600)
    for flag in ("true", "false"):
        run_sample(path, tmp_path / flag, mode="iterative", budget=40, surrogate="lightgbm", seed=0,
                   config_file=str(REPO / "config" / "default201.yml"),
                   overrides=[f"sampler.skip_equivalent={flag}", "sampler.init_size=24", "sampler.query_step=8"])
        saved = json.loads((tmp_path / flag / "search.json").read_text())
        assert saved["acquisition"]["skip_equivalent"] is (flag == "true")
