"""A read-only install with an unwritable home still runs the numba kernels (cache in <tmp>)."""

import os
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
