"""The query-efficient loop skips cells that are the same network as a queried one
(``SearchSpace.equivalence_codes``; NB201: ``pipeline.nb201_equivalence``)."""
import numpy as np
import pytest

from cache.store import Store
from nar.search import open_context
from tests.fakes import fake_store_201


@pytest.fixture(scope="module")
def ctx201(tmp_path_factory):
    return open_context(Store(fake_store_201(tmp_path_factory.mktemp("s") / "s201.h5", n=1500)), "cifar10")


def test_iterative_mode_never_queries_the_same_network_twice(ctx201):
    from nar.iterative import iterative_search

    cls = ctx201.pool.space.equivalence_codes(ctx201.pool)
    sums = np.bincount(cls, np.nan_to_num(ctx201.select, nan=0.0))
    score = sums[cls] / np.bincount(cls)[cls]

    class ClassMean:  # scores every cell of a class alike: a round would take classmates together
        def fit(self, rows, labels, previous=None):
            return None

        def predict(self, model, rows):
            return score[rows]

    runs = {skip: iterative_search(ctx201, ClassMean(), budget=80, init_size=20, query_step=10, seed=1,
                                   skip_equivalent=skip)[0] for skip in (True, False)}
    assert len(runs[True]) == len(runs[False]) == 80
    assert len(np.unique(cls[runs[True]])) == 80 > len(np.unique(cls[runs[False]]))
