"""NAS-Bench-101's official ``.tfrecord`` read without TensorFlow.

Framing of each record: uint64 length, masked CRC32C of those 8 bytes, the data, masked CRC32C
of the data (all little-endian); both CRCs are verified. The data is a JSON list
``[hash, epochs, adjacency, ops, metrics]``: adjacency a row-major 0/1 string, ops a comma
list, metrics a base64 ``ModelMetrics`` protobuf, decoded here from the wire format:

    ModelMetrics:   1 evaluation_data (repeated message), 2 trainable_parameters (int32),
                    3 total_time (double)
    EvaluationData: 1 current_epoch, 2 training_time, 3 train_accuracy,
                    4 validation_accuracy, 5 test_accuracy (doubles), 6 checkpoint_path

Other fields (EC-NAS-Bench adds energy fields) are skipped. One record is one training run;
NAR's metrics are the mean over the runs of a cell of the final evaluation at the budget.
"""
from __future__ import annotations

import base64
import json
import logging
import mmap
import struct
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import NarError
from pipeline.sources import Nb101Rows, cells_101, parse_adjacency
from pipeline.sources.crc32c import crc32c, crc32c_many, mask

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<QI")
MAX_RECORD_BYTES = 16 << 20
_CRC = struct.Struct("<I")
_DOUBLE = struct.Struct("<d")
_EVAL_FIELDS = {1: "current_epoch", 2: "training_time", 3: "train_accuracy",
                4: "validation_accuracy", 5: "test_accuracy"}


@dataclass
class Evaluation:
    """One ``EvaluationData`` message (proto2 defaults 0.0)."""

    current_epoch: float = 0.0
    training_time: float = 0.0
    train_accuracy: float = 0.0
    validation_accuracy: float = 0.0
    test_accuracy: float = 0.0


@dataclass
class Run:
    """One record: a training run of a cell at a budget."""

    hash: str
    epochs: int
    adjacency: str
    ops: str
    trainable_parameters: int = 0
    total_time: float = 0.0
    evaluations: list = field(default_factory=list)


# ---------------------------------------------------------------- framing

def iter_frames(path, chunk_records: int = 1 << 16):
    """Yield ``(record_number, data bytes)`` of a TFRecord file after checking both CRCs;
    NarError naming the record on a bad CRC or a short read."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        if size == 0:
            return
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        buf = np.frombuffer(mm, dtype=np.uint8)
        pos, rec = 0, 0
        while pos < size:
            pos, rec = yield from _chunk(path, mm, buf, size, pos, rec, chunk_records)
    finally:
        buf = None
        try:
            mm.close()
        except BufferError:  # a view is still alive (abandoned generator); GC closes it
            pass


def _chunk(path, mm, buf, size, pos, rec, chunk_records):
    starts, lengths, len_crcs, data_crcs = [], [], [], []
    while pos < size and len(starts) < chunk_records:
        n = rec + len(starts)
        if pos + 12 > size:
            raise NarError(f"{path}: record {n}: short read in the length header "
                           f"({size - pos} bytes left); the file is truncated")
        length, lcrc = _HEADER.unpack_from(mm, pos)
        if length > MAX_RECORD_BYTES and mask(crc32c(mm[pos:pos + 8])) == lcrc:
            raise NarError(f"{path}: record {n}: {length} bytes announced; NAS-Bench-101 records "
                           f"are a few KB (at most {MAX_RECORD_BYTES >> 20} MiB read): the file is corrupt")
        end = pos + 12 + length + 4
        if end > size:
            if mask(crc32c(mm[pos:pos + 8])) != lcrc:
                raise NarError(f"{path}: record {n}: bad CRC of the length; the file is corrupt")
            raise NarError(f"{path}: record {n}: short read ({length} data bytes announced, "
                           f"{max(size - pos - 12, 0)} left); the file is truncated")
        starts.append(pos)
        lengths.append(length)
        len_crcs.append(lcrc)
        data_crcs.append(_CRC.unpack_from(mm, end - 4)[0])
        pos = end
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    got_len = mask(crc32c_many(buf, starts, np.full(len(starts), 8)))
    got_data = mask(crc32c_many(buf, starts + 12, lengths))
    bad_len = np.flatnonzero(got_len != np.asarray(len_crcs, dtype=np.uint32))
    bad_data = np.flatnonzero(got_data != np.asarray(data_crcs, dtype=np.uint32))
    if len(bad_len) or len(bad_data):
        first = min([*bad_len[:1], *bad_data[:1]])
        what = "length" if first in bad_len else "data"
        raise NarError(f"{path}: record {rec + int(first)}: bad CRC of the {what}; "
                       f"the file is corrupt")
    for i, (s, ln) in enumerate(zip(starts.tolist(), lengths.tolist())):
        yield rec + i, mm[s + 12:s + 12 + ln]
    return pos, rec + len(starts)


# ---------------------------------------------------------------- protobuf wire format

def _varint(b: bytes, i: int):
    result = shift = 0
    while True:
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        if c < 0x80:
            return result, i
        shift += 7


def _fields(b: bytes):
    """Yield (field number, wire type, value) of a message; value is int, float or bytes."""
    i, n = 0, len(b)
    while i < n:
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            v = _DOUBLE.unpack_from(b, i)[0]
            i += 8
        elif wt == 2:
            ln, i = _varint(b, i)
            v = b[i:i + ln]
            i += ln
        elif wt == 5:
            v = b[i:i + 4]
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wt} (field {num})")
        if i > n:
            raise ValueError("message ends inside a field")
        yield num, wt, v


def decode_evaluation(b: bytes) -> Evaluation:
    ev = Evaluation()
    for num, wt, v in _fields(b):
        name = _EVAL_FIELDS.get(num)
        if name is not None and wt == 1:
            setattr(ev, name, v)
    return ev


def decode_metrics(b: bytes, run: Run) -> Run:
    """Fill ``run`` from a serialized ``ModelMetrics``."""
    for num, wt, v in _fields(b):
        if num == 1 and wt == 2:
            run.evaluations.append(decode_evaluation(v))
        elif num == 2 and wt == 0:
            run.trainable_parameters = v - (1 << 64) if v >= 1 << 63 else v
        elif num == 3 and wt == 1:
            run.total_time = v
    return run


def iter_runs(path, epochs: int | None = None):
    """Decoded runs of a NAS-Bench-101 tfrecord; only budget ``epochs`` when given."""
    for n, data in iter_frames(path):
        try:
            h, ep, adj, ops, blob = json.loads(data)
            if not (isinstance(h, str) and isinstance(adj, str) and isinstance(ops, str)
                    and isinstance(blob, str) and isinstance(ep, int) and not isinstance(ep, bool)):
                raise ValueError("expected [hash, epochs, adjacency, ops, metrics] as "
                                 "[str, int, str, str, base64 str]")
            if epochs is not None and int(ep) != epochs:
                continue
            yield decode_metrics(base64.b64decode(blob), Run(h, int(ep), adj, ops))
        except NarError:
            raise
        except (ValueError, TypeError, IndexError, struct.error, RecursionError) as e:
            raise NarError(f"{path}: record {n}: not a NAS-Bench-101 record ({e}); "
                           f"is this the official tfrecord?") from None


# ---------------------------------------------------------------- NAR rows

def read(path, epochs: int = 108, limit: int | None = None) -> Nb101Rows:
    """Cells with runs at budget ``epochs``, in order of first appearance, with the mean over
    runs of the final evaluation's training time and train/validation/test accuracy.

    Only running sums are kept per cell, so the 1.27M runs of the official file fit easily."""
    cells: dict = {}  # hash -> [adjacency, ops, params, runs, sum of the 4 final metrics]
    for run in iter_runs(path, epochs):
        if not run.evaluations:
            raise NarError(f"{path}: cell {run.hash}: a run without evaluations; "
                           f"is this the official tfrecord?")
        f = run.evaluations[-1]
        c = cells.get(run.hash)
        if c is None:
            c = cells[run.hash] = [run.adjacency, run.ops, run.trainable_parameters, 0,
                                   [0.0, 0.0, 0.0, 0.0]]
        elif c[2] != run.trainable_parameters:
            raise NarError(f"{path}: cell {run.hash}: runs disagree on trainable_parameters")
        c[3] += 1
        sums = c[4]
        sums[0] += f.training_time
        sums[1] += f.train_accuracy
        sums[2] += f.validation_accuracy
        sums[3] += f.test_accuracy
    if not cells:
        import os

        if os.path.getsize(path) == 0:
            raise NarError(f"{path} is empty; give the NAS-Bench-101 .tfrecord file (re-download it)")
        raise NarError(f"{path}: no runs at {epochs} epochs; pick another --epochs budget")
    hashes = list(cells)[:limit] if limit else list(cells)
    first = [cells[h] for h in hashes]
    where = lambda i: f"{path}: cell {hashes[i]}"  # noqa: E731
    mats = [parse_adjacency(c[0], where(i)) for i, c in enumerate(first)]
    adjacency, ops, n_vertices = cells_101(hashes, mats, [c[1].split(",") for c in first], where)
    means = np.array([c[4] for c in first]) / np.array([c[3] for c in first])[:, None]
    params = np.array([c[2] for c in first], dtype=np.int64)
    metrics = dict(zip(("avg_training_time", "avg_train_accuracy", "avg_validation_accuracy",
                        "avg_test_accuracy"), means.T.copy()))
    log.info("%s: %d cells at %d epochs", path, len(hashes), epochs)
    return Nb101Rows(hashes, adjacency, ops, n_vertices, metrics, params)
