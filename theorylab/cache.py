"""The results cache of ``theorylab reproduce``: one JSON file per finished cell.

An entry is keyed by

* the experiment's stem,
* the full config (every field, so ``--quick`` and the full run never share an entry, and an
  overridden flag that a cell does not read still invalidates it: wrong reuse costs more than
  a recompute),
* the cell (its JSON parameters, see :mod:`theorylab.cells`),
* the **code version**: a SHA-256 over the source of every ``theorylab/**/*.py`` file, the
  experiment script's source and the versions of Python, numpy, torch, numba and sympy.

Hashing the whole library rather than the modules a cell imports is deliberate: a cell's
numbers depend on modules it reaches indirectly (tolerances, validation, a shared kernel), and
an import graph misses what a function looks up at call time.  Editing any library file
therefore recomputes every cell; editing one script recomputes that experiment only.

Layout: ``<cache>/<stem>/<code version>/<key>.json``.  A file holds
``{"format", "key", "stem", "code_version", "cell", "result", "checksum", "seconds"}``; the
checksum is the SHA-256 of the canonical JSON of ``result``.  Reading validates all of it: a
truncated or garbled file, a file whose ``key`` is not the one asked for (a renamed or copied
entry) or whose checksum does not match (an edited number) is reported as corrupt and the cell
is recomputed and rewritten.  Writes go to a temporary in the same folder and are renamed into
place (``os.replace``): a killed process leaves a ``.tmp.*`` file that is never read back and is
removed by the next store.  Only JSON is ever read: no pickle, nothing executed.

When a run of an experiment has finished, older code versions of that experiment are removed
(:meth:`ResultCache.prune`), so the cache holds one version per experiment.  The folder gets a
``.gitignore`` of ``*`` when created, so a cache inside the checkout is never committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from functools import lru_cache
from importlib import metadata
from pathlib import Path

__all__ = ["ResultCache", "CacheCorrupt", "MISS", "library_version", "code_version", "canonical", "cell_key", "FORMAT"]

FORMAT = 1
MISS = object()  # what ResultCache.get returns for an absent entry (a result may be null)
_PACKAGES = ("numpy", "torch", "numba", "sympy")


class CacheCorrupt(Exception):
    """A cache entry that cannot be trusted (truncated, garbled, wrong key, wrong checksum)."""


def canonical(obj) -> str:
    """The one JSON text of ``obj``: sorted keys, no spaces, strict (no NaN/Infinity)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@lru_cache(maxsize=1)
def library_version() -> str:
    """SHA-256 (hex, 16 digits) of every ``theorylab/**/*.py`` (path and bytes) and the
    versions of Python and the numerical packages: equal on two machines only when a cell
    would run the same code there."""
    import platform

    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        if "__pycache__" in p.parts:
            continue
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    versions = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    h.update(canonical(versions).encode())
    return h.hexdigest()[:16]


def code_version(script_source: str) -> str:
    """The library version combined with one experiment script's source."""
    return _sha(library_version() + "\0" + script_source)[:16]


def cell_key(stem: str, config: dict, cell: dict, version: str) -> str:
    """SHA-256 of the canonical JSON of (stem, config, cell, code version)."""
    return _sha(canonical({"stem": stem, "config": config, "cell": cell, "code_version": version}))


class ResultCache:
    """``get``/``put`` finished cells under ``root``; see the module docstring for the format."""

    def __init__(self, root):
        self.root = Path(root)

    def prepare(self) -> None:
        """Create the folder (with its ``.gitignore``); ``OSError`` if it cannot be written."""
        self.root.mkdir(parents=True, exist_ok=True)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# results cache of theorylab reproduce: never committed\n*\n")
        fd, probe = tempfile.mkstemp(dir=self.root, prefix=".write-check.")
        os.close(fd)
        os.unlink(probe)

    def path(self, stem: str, version: str, key: str) -> Path:
        return self.root / stem / version / f"{key}.json"

    def get(self, stem: str, version: str, key: str):
        """The cached result, :data:`MISS` if absent; ``CacheCorrupt`` if the entry is not valid."""
        p = self.path(stem, version, key)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            return MISS
        except (OSError, UnicodeDecodeError) as e:
            raise CacheCorrupt(f"{p}: unreadable ({e})") from None
        try:
            entry = json.loads(text, parse_constant=_reject_constant)
        except ValueError as e:
            raise CacheCorrupt(f"{p}: not valid JSON ({e})") from None
        if not isinstance(entry, dict) or not {"format", "key", "result", "checksum"} <= set(entry):
            raise CacheCorrupt(f"{p}: not a cache entry")
        if entry["format"] != FORMAT:
            raise CacheCorrupt(f"{p}: format {entry['format']!r}, expected {FORMAT}")
        if entry["key"] != key:
            raise CacheCorrupt(f"{p}: holds key {str(entry['key'])[:16]}..., expected {key[:16]}...")
        if entry["checksum"] != _sha(canonical(entry["result"])):
            raise CacheCorrupt(f"{p}: checksum mismatch (the result was altered)")
        return entry["result"]

    def put(self, stem: str, version: str, key: str, cell: dict, result, seconds: float) -> None:
        """Write one entry atomically; an ``OSError`` is a warning (the cache is an optimisation)."""
        p = self.path(stem, version, key)
        entry = {"format": FORMAT, "key": key, "stem": stem, "code_version": version, "cell": cell,
                 "result": result, "checksum": _sha(canonical(result)), "seconds": round(seconds, 3)}
        tmp = None
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            for stale in p.parent.glob(".tmp.*"):
                _remove_if_stale(stale)
            fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp.", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(entry, allow_nan=False))  # key order kept: a cached result reads back as computed
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
            tmp = None
        except OSError as e:
            warnings.warn(f"theorylab cache: could not store {p}: {e}", stacklevel=2)
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)

    def discard(self, stem: str, version: str, key: str) -> None:
        self.path(stem, version, key).unlink(missing_ok=True)

    def prune(self, stem: str, keep: str) -> list[str]:
        """Remove every code version of ``stem`` except ``keep``; return the removed ones."""
        d = self.root / stem
        gone = [v.name for v in d.iterdir() if v.is_dir() and v.name != keep] if d.is_dir() else []
        for v in gone:
            shutil.rmtree(d / v, ignore_errors=True)
        return gone


def _reject_constant(name):
    raise ValueError(f"non-finite constant {name}")


def _remove_if_stale(path: Path, age_s: float = 3600.0) -> None:
    """A temporary older than an hour was left by a killed process (a live writer renames
    its own within milliseconds)."""
    import time

    try:
        if time.time() - path.stat().st_mtime > age_s:
            path.unlink()
    except OSError:
        pass
