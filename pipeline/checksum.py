"""SHA256 of a source file and the rule that decides which digest it must have.

NAR's two released cell-information JSON files have published digests; any other file needs
the expected digest from ``--sha256 HEX`` or from a ``FILE.sha256`` beside it.
"""
from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Callable

from pipeline.atomic import write_text_atomic
from pipeline.errors import NarError, other_bench_hint
from pipeline.spaces import all_spaces

log = logging.getLogger(__name__)

BLOCK_SIZE = 1 << 20  # hash in 1-MB blocks

# Published digests of NAR's released JSON files (see the data README, "Known facts"), by
# store id; each space declares its own (``SearchSpace.published_sha256``).
PUBLISHED_SHA256 = {s.bench: s.published_sha256 for s in all_spaces() if s.published_sha256}
# File names of NAR's released files: a file of such a name must carry the published digest.
PUBLISHED_NAMES = {name: s.bench for s in all_spaces() for name in s.published_names}

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def file_sha256(path, on_block: Callable[[bytes], None] | None = None) -> str:
    """Hex SHA256 of ``path`` read in 1-MB blocks; ``on_block`` sees every block in order."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(BLOCK_SIZE)
            if not block:
                break
            h.update(block)
            if on_block is not None:
                on_block(block)
    return h.hexdigest()


def normalise_hex(value: str, where: str) -> str:
    """A 64-digit hex digest in lower case, or NarError naming ``where`` it came from."""
    v = value.strip().lower()
    if not _HEX64.match(v):
        raise NarError(f"{where}: {value!r} is not a SHA256 digest (64 hex digits); "
                       f"give the digest exactly as `sha256sum` prints it")
    return v


def sidecar_path(path) -> Path:
    """``FILE.sha256`` beside ``FILE``."""
    p = Path(path)
    return p.with_name(p.name + ".sha256")


def expected_sha256(path, bench: str, sha256: str | None = None) -> str | None:
    """The digest ``path`` must have: ``sha256`` if given, else the first token of
    ``FILE.sha256``, else the published one when the file carries NAR's released name;
    None when nothing says (the caller then accepts only a published digest)."""
    if sha256:
        return normalise_hex(sha256, "--sha256")
    side = sidecar_path(path)
    if side.exists():
        tokens = side.read_text(errors="replace").split()
        if not tokens:
            raise NarError(f"{side} is empty; write the file's SHA256 as its first word")
        return normalise_hex(tokens[0], str(side))
    name_bench = PUBLISHED_NAMES.get(Path(path).name)
    if name_bench == bench:
        return PUBLISHED_SHA256[bench]
    return None


def verify_sha256(path, bench: str, actual: str, sha256: str | None = None) -> None:
    """Raise NarError unless ``actual`` (the digest of ``path``) is the one it must have."""
    expected = expected_sha256(path, bench, sha256)
    if expected is not None:
        if actual != expected:
            raise NarError(f"SHA256 mismatch for {path}: expected {expected}, got {actual}; "
                           f"the file is damaged or not the one meant: re-download it "
                           f"(or fix the expected digest)")
        log.info("sha256 of %s verified (%s)", path, actual[:12])
        return
    if actual == PUBLISHED_SHA256.get(bench):
        log.info("%s is NAR's published NB%s file (sha256 %s)", path, bench, actual[:12])
        return
    for other, digest in PUBLISHED_SHA256.items():
        if actual == digest and other != bench:
            raise NarError(f"{path} is NAR's published NB{other} file, not NB{bench}; "
                           f"{other_bench_hint(other)}")
    raise NarError(f"no SHA256 known for {path}: pass --sha256 HEX, "
                   f"or write the expected digest into {sidecar_path(path)}, "
                   f"or use --skip-sha256 to encode it unverified")


def write_sidecar(path) -> str:
    """Hash ``path`` and write ``FILE.sha256`` beside it (``sha256sum`` format, atomic);
    returns the digest. Used by ``nar-cli build`` so its own outputs can be encoded."""
    p = Path(path)
    digest = file_sha256(p)
    write_text_atomic(sidecar_path(p), f"{digest}  {p.name}\n")
    return digest
