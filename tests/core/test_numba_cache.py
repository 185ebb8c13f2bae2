"""A read-only install with an unwritable home still runs the numba kernels (cache in <tmp>)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import theorylab

SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import theorylab
assert theorylab.__file__.startswith(sys.argv[1]), theorylab.__file__
from theorylab.ssm import make_inputs, selective_scan
p = make_inputs(np.random.default_rng(0), batch=1, length=9, channels=3, state=2)
y = selective_scan(**p, backend="numba")
r = selective_scan(**p, backend="ref")
print(float(np.abs(y - r).max() / np.abs(r).max()))
"""


def _read_only_copy(dst: Path) -> Path:
    """theorylab copied under ``dst``, every ``__pycache__`` replaced by a *file* (no folder can be
    made there, not even by root) and, for other users, the tree made read-only."""
    pkg = dst / "theorylab"
    shutil.copytree(Path(theorylab.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in [pkg, *(p for p in pkg.rglob("*") if p.is_dir())]:
        (folder / "__pycache__").write_text("not a folder")
    for p in sorted(dst.rglob("*"), reverse=True):
        p.chmod(0o444 if p.is_file() else 0o555)
    return dst


def test_read_only_package_and_home_fall_back_to_a_temp_cache(tmp_path):
    src = _read_only_copy(tmp_path / "site")
    (tmp_path / "home-is-a-file").write_text("")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(tmp_path / "home-is-a-file" / "home"), TMPDIR=str(tmp), PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(src)], capture_output=True, text=True, env=env, timeout=600)
    try:
        assert r.returncode == 0, r.stderr[-3000:]
        assert float(r.stdout.strip().splitlines()[-1]) <= 1e-10
        cached = list((tmp / f"theorylab-numba-{os.getuid()}").rglob("*.nbi"))
        assert cached, "the kernels were cached in the fallback folder"
        assert "no locator available" not in r.stderr
    finally:
        for p in [tmp_path / "site", *(tmp_path / "site").rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


CALLER = """
from numba import njit
from theorylab._numba_cache import refresh_on_change
from . import dep

@njit(cache=True)
def g():
    return dep.f() * 10
{refresh}
"""


def _stale_callee_run(tmp_path, refresh: bool) -> list[str]:
    """A package whose cached kernel g calls kernel f of another file; g runs, then only f's file
    changes (1 -> 22) and g runs again in a new process.  Returns the two outputs."""
    pkg = tmp_path / ("fresh" if refresh else "stale") / "pkgx"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "dep.py").write_text("from numba import njit\n\n@njit(cache=True)\ndef f():\n    return 1\n")
    (pkg / "caller.py").write_text(CALLER.format(refresh="refresh_on_change(globals(), [dep.__file__])" if refresh else ""))
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    code = "import sys; sys.path.insert(0, sys.argv[1]); from pkgx.caller import g; print(g())"

    def run():
        r = subprocess.run([sys.executable, "-c", code, str(pkg.parent)], capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout.strip()

    first = run()
    assert list((pkg / "__pycache__").glob("caller.g-*.nbi")), "g was cached"
    (pkg / "dep.py").write_text("from numba import njit\n\n@njit(cache=True)\ndef f():\n    return 22\n")
    return [first, run()]


def test_a_changed_callee_file_recompiles_its_cached_callers(tmp_path):
    """numba checks a cached kernel against its own file only: refresh_on_change makes a caller
    follow a change in the file of a kernel it calls (theorylab's kernels calling _fastexp, _simd,
    _vexp and the ε-rank's lanes eigensolver rely on it)."""
    assert _stale_callee_run(tmp_path, refresh=True) == ["10", "220"]


def test_every_cached_kernel_module_sets_its_cache_and_follows_its_callees():
    """Static: a module with ``cache=True`` kernels calls ensure_cache_dir before its decorators,
    and one that imports kernels from another theorylab module calls refresh_on_change."""
    root = Path(theorylab.__file__).parent
    kernel_modules = {p for p in root.rglob("*.py") if re.search(r"^@(njit|numba\.njit|jit)\([^)]*cache=True", p.read_text(), re.M)}
    assert len(kernel_modules) >= 10
    for p in kernel_modules:
        text = p.read_text()
        assert "ensure_cache_dir(__file__)" in text, p
        assert text.index("ensure_cache_dir(__file__)") < re.search(r"^@\w+(\.\w+)?\([^)]*cache=True", text, re.M).start(), p
        imported = [m for m in kernel_modules if m != p and (f"import {m.stem}" in text or f".{m.stem} import" in text)]
        if imported:
            assert "refresh_on_change(globals()" in text, (p, imported)
