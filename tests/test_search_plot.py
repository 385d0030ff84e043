"""Search plots: mean best-so-far curves over seeds and the query-curve figure (nar/plot.py)."""
import numpy as np


def test_query_curves_plot(tmp_path):
    from nar.plot import mean_curve, plot_query_curves

    a, b = [[1, 90.0], [10, 92.0], [50, 93.0]], [[1, 91.0], [20, 93.5]]
    assert mean_curve([a, b], np.array([1, 10, 20, 50])).tolist() == [90.5, 91.5, 92.75, 93.25]
    p = plot_query_curves({"x": [a, b], "y": [b]}, 94.0, tmp_path / "c.png")
    assert p.read_bytes()[:4] == b"\x89PNG"
