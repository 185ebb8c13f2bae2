"""Experiments as grids of cells: the unit that is cached, resumed and sent to workers.

An experiment script declares its grid with three module-level functions::

    def cells(cfg) -> list[dict]:              # one JSON dict of parameters per independent unit
        return [{"panel": "error", "L": L} for L in cfg.lengths] + [{"panel": "timing"}]

    def compute_cell(cfg, cell) -> dict:        # the numbers of one cell (JSON-serializable)
        ...

    def assemble(cfg, results) -> dict:         # results[i] belongs to cells(cfg)[i] -> the data
        ...

    compute = Cells(cells, compute_cell, assemble)   # still a function: compute(cfg) -> data

A script in the older convention, a plain ``compute(cfg) -> dict``, runs unchanged as one
cell (:func:`as_cells`).

Contract (what the cache and the executors rely on):

* a cell depends only on ``cfg`` and its own dict (no state shared between cells, its own
  seeds derived from the cell, e.g. ``np.random.default_rng([seed, L])``), so cells may run in
  any order, in other processes, on other machines;
* ``compute_cell`` returns JSON values; what it returns goes through :func:`to_json` (numpy
  to lists, non-finite floats to ``None``, tuples to lists) *before* ``assemble`` sees it,
  whether it was just computed or read from the cache -- so the data is the same either way;
* wall-clock times and anything fitted to them go under the one top-level ``timings`` key of
  the assembled data; everything else is bit-identical for the same config.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable

__all__ = ["Cells", "as_cells", "to_json", "config_fields", "config_from_fields", "entry_name"]


@dataclasses.dataclass(frozen=True)
class Cells:
    """The declared grid of an experiment: ``cells(cfg)``, ``compute_cell(cfg, cell)``,
    ``assemble(cfg, results)``.  Calling it runs every cell in this process, in order, without
    a cache: the same data as ``theorylab reproduce``."""

    cells: Callable
    compute_cell: Callable
    assemble: Callable

    def __call__(self, cfg) -> dict:
        cells = checked_cells(self.cells(cfg))
        return to_json(self.assemble(cfg, [to_json(self.compute_cell(cfg, c)) for c in cells]))

    @property
    def one_cell(self) -> bool:
        return getattr(self.compute_cell, "_theorylab_one_cell", False)


def as_cells(compute) -> Cells:
    """``compute`` as a grid: a :class:`Cells` as is, a plain ``compute(cfg) -> dict`` as one cell."""
    if isinstance(compute, Cells):
        return compute

    def compute_cell(cfg, cell):
        return compute(cfg)

    compute_cell._theorylab_one_cell = True
    compute_cell._theorylab_entry = compute
    return Cells(lambda cfg: [{}], compute_cell, lambda cfg, results: results[0])


def entry_name(grid: Cells) -> str:
    """The module-level name a worker looks up to run one cell of ``grid``."""
    fn = getattr(grid.compute_cell, "_theorylab_entry", grid.compute_cell)
    return fn.__qualname__


def checked_cells(cells) -> list[dict]:
    """``cells`` as a list of distinct JSON dicts, else ``TypeError``/``ValueError``."""
    if not isinstance(cells, (list, tuple)) or not cells:
        raise TypeError(f"cells(cfg) must return a non-empty list of dicts; got {type(cells).__name__}")
    out = []
    for c in cells:
        if not isinstance(c, dict):
            raise TypeError(f"every cell must be a dict of JSON parameters; got {type(c).__name__}")
        out.append(to_json(c))
    texts = [json.dumps(c, sort_keys=True) for c in out]
    if len(set(texts)) != len(texts):
        raise ValueError("cells(cfg) returned the same cell twice: cells are keys and must be distinct")
    return out


def to_json(obj):
    """``obj`` as the JSON value it is stored as: ``strict_json`` then a JSON round trip."""
    from .experiment import strict_json

    return json.loads(json.dumps(strict_json(obj), allow_nan=False))


def config_fields(cfg) -> dict:
    """A config dataclass as JSON fields (tuples as lists)."""
    return to_json(dataclasses.asdict(cfg))


def config_from_fields(Config, fields: dict):
    """Inverse of :func:`config_fields` for configs whose sequences are tuples."""
    def tup(v):
        return tuple(tup(x) for x in v) if isinstance(v, list) else v

    return Config(**{k: tup(v) for k, v in fields.items()})
