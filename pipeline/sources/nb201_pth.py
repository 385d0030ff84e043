"""NAS-Bench-201's official ``.pth`` files (``NAS-Bench-201-v1_0-e61699.pth``, ``-v1_1-096897.pth``).

Layout, as the official API documents it: a dict with ``meta_archs`` (list of architecture
strings, position = official index), ``arch2infos`` ({index: {'full': ArchResults state,
'less': ...}}; 'full' is the 200-epoch schedule), ``evaluated_indexes`` and ``total_archs``.
An ArchResults state holds ``arch_str``, ``dataset_seed`` ({dataset: [seeds]}) and
``all_results`` ({(dataset, seed): ResultsCount state}); a ResultsCount state holds
``epochs``, ``eval_acc1es`` ({'<set>@<epoch>': accuracy in percent}) and ``latency`` (list of
seconds, or None).

NAR's metrics are the mean over seeds at the last epoch (``epochs - 1``):
cifar10_val_acc = cifar10-valid 'x-valid', cifar10_test_acc = cifar10 'ori-test',
cifar100/imagenet16 val/test = cifar100 / ImageNet16-120 'x-valid' / 'x-test'; each latency
is the mean positive latency of cifar10-valid / cifar100 / ImageNet16-120 (null if none).
The file is loaded with ``torch.load(weights_only=True)`` (plain containers, tensors and numpy
scalars only), so no code from the file runs.
"""
from __future__ import annotations

import logging
import math
import pickle

import numpy as np

from pipeline.errors import NarError
from pipeline.sources import METRICS_201, Nb201Rows, empty_metrics

log = logging.getLogger(__name__)

# NAR field -> (NAS-Bench-201 dataset, evaluation set); latency fields -> (dataset, None)
FIELD_SOURCES = {
    "cifar10_val_acc": ("cifar10-valid", "x-valid"),
    "cifar10_test_acc": ("cifar10", "ori-test"),
    "cifar100_val_acc": ("cifar100", "x-valid"),
    "cifar100_test_acc": ("cifar100", "x-test"),
    "imagenet16_val_acc": ("ImageNet16-120", "x-valid"),
    "imagenet16_test_acc": ("ImageNet16-120", "x-test"),
    "cifar10_latency": ("cifar10-valid", None),
    "cifar100_latency": ("cifar100", None),
    "imagenet16_latency": ("ImageNet16-120", None),
}
SCHEDULES = ("full", "200")  # key of the 200-epoch results (later API versions say '200')


def _numpy_globals():
    import numpy._core.multiarray as ma

    dtypes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32, np.bool_)]
    return [ma.scalar, ma._reconstruct, np.ndarray, np.dtype, *dtypes]


def load(path) -> dict:
    """The benchmark dict, loaded without running code from the file."""
    import torch

    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise NarError(f"{path}: holds objects other than plain data, or is not a torch file "
                       f"({str(e).splitlines()[0][:80]}); "
                       f"is this an official NAS-Bench-201 file?") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise NarError(f"{path}: cannot load ({e}); is this a complete NAS-Bench-201 .pth "
                       f"file?") from None
    missing = [k for k in ("meta_archs", "arch2infos") if not isinstance(data, dict) or k not in data]
    if missing:
        raise NarError(f"{path}: no {', '.join(missing)}; not the NAS-Bench-201 layout "
                       f"(meta_archs, arch2infos, evaluated_indexes, total_archs)")
    return data


def _mean(values):
    if any(isinstance(v, bool) for v in values):
        raise TypeError("a boolean where a number belongs")
    values = [float(v) for v in values if v is not None]
    return float(np.mean(values)) if values else math.nan


def arch_metrics(info: dict, where: str) -> dict:
    """NAR metrics of one ArchResults state (NaN where the file has nothing)."""
    out = {}
    seeds = info.get("dataset_seed", {})
    results = info.get("all_results", {})
    for field, (dataset, setname) in FIELD_SOURCES.items():
        runs = []
        for seed in seeds.get(dataset, []):
            run = results.get((dataset, seed))
            if run is None:
                raise NarError(f"{where}: dataset_seed lists ({dataset!r}, {seed}) but "
                               f"all_results lacks it; the file is corrupt")
            runs.append(run)
        if setname is None:
            lat = [_mean(r.get("latency") or []) for r in runs]
            out[field] = _mean([v for v in lat if v > 0])
        else:
            out[field] = _mean([r.get("eval_acc1es", {}).get(f"{setname}@{int(r['epochs']) - 1}")
                                for r in runs])
    return out


def read(path, limit: int | None = None) -> Nb201Rows:
    """Records for every architecture of ``arch2infos``, in index order."""
    data = load(path)
    metas, infos = data["meta_archs"], data["arch2infos"]
    if not isinstance(metas, (list, tuple)) or not isinstance(infos, dict):
        raise NarError(f"{path}: meta_archs must be a list and arch2infos a dict; is this an official "
                       f"NAS-Bench-201 file?")
    try:
        indices = sorted(int(k) for k in infos)
    except (TypeError, ValueError):
        raise NarError(f"{path}: arch2infos keys must be architecture indices; is this an official "
                       f"NAS-Bench-201 file?") from None
    if limit is not None:
        indices = indices[:limit]
    if not indices:
        raise NarError(f"{path}: arch2infos is empty")
    n = len(indices)
    metrics = empty_metrics(METRICS_201, n)
    ops6 = np.zeros((n, 6), dtype=np.int8)
    for i, k in enumerate(indices):
        where = f"{path}: architecture {k}"
        if not 0 <= k < len(metas):
            raise NarError(f"{where}: index outside meta_archs (0..{len(metas) - 1})")
        try:
            _read_arch(k, infos, metas, where, ops6, metrics, i)
        except NarError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise NarError(f"{where}: unexpected result layout ({type(e).__name__}: {e}); is this an "
                           f"official NAS-Bench-201 file?") from None
    log.info("%s: %d architectures", path, n)
    return Nb201Rows(np.asarray(indices, dtype=np.int64), ops6, metrics)


def _read_arch(k, infos, metas, where, ops6, metrics, i):
    """Fill row ``i`` of ``ops6`` and ``metrics`` from architecture ``k`` of the file."""
    from pipeline.nb201_space import parse_arch

    entry = infos[k] if k in infos else infos[str(k)]
    if not isinstance(entry, dict):
        raise NarError(f"{where}: arch2infos entry is {type(entry).__name__}, expected a dict")
    schedule = next((s for s in SCHEDULES if s in entry), None)
    if schedule is None:
        raise NarError(f"{where}: no 200-epoch results (keys {sorted(entry)}); "
                       f"expected 'full'")
    info = entry[schedule]
    if not isinstance(info, dict) or not isinstance(metas[k], str):
        raise NarError(f"{where}: results or meta_archs entry have the wrong type; the file is corrupt")
    try:
        ops6[i] = parse_arch(metas[k])
    except NarError as e:
        raise NarError(f"{where}: {e}") from None
    if info.get("arch_str", metas[k]) != metas[k]:
        raise NarError(f"{where}: arch_str {info['arch_str']!r} differs from meta_archs "
                       f"{metas[k]!r}; the file is corrupt")
    try:
        for field, v in arch_metrics(info, where).items():
            metrics[field][i] = v
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise NarError(f"{where}: unexpected result layout ({e!r}); is this an official "
                       f"NAS-Bench-201 file?") from None
