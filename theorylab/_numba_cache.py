"""Where numba keeps theorylab's compiled kernels.

Every module that defines ``@njit(cache=True)`` kernels calls :func:`ensure_cache_dir` before
its decorators run.  numba stores its cache in the package's ``__pycache__`` folder and, when
that is read-only (an installed, read-only package), in the user-wide cache folder
(``$XDG_CACHE_HOME/numba``, else ``~/.cache/numba``).  When neither can be written (a read-only
package and an unwritable home, as in some containers and CI runners) numba fails at the first
call with "cannot cache function ...: no locator available".  Then, and only then, this points
``NUMBA_CACHE_DIR`` at a private folder in the system's temporary directory,
``<tmp>/theorylab-numba-<uid>``.  A ``NUMBA_CACHE_DIR`` the user set is always kept.

A module whose kernels call (or inline) kernels of another file calls :func:`refresh_on_change`
after its decorators: numba checks a cached kernel against its own file only, so without it a
change to the other file alone (an editable install after ``git pull``) would leave the caller
running its cached copy of the old callee.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import lru_cache
from pathlib import Path

__all__ = ["ensure_cache_dir", "fallback_dir", "refresh_on_change"]


def _writable(folder: Path) -> bool:
    """What numba's locators test: the folder can be created and a file written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        return True
    except OSError:
        return False


def fallback_dir() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"theorylab-numba-{uid}"


@lru_cache(maxsize=None)
def ensure_cache_dir(source_file: str) -> str | None:
    """Make sure numba can cache the kernels of ``source_file``; return the folder chosen
    here, or ``None`` when numba's own choice works (or the user set ``NUMBA_CACHE_DIR``)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    if _writable(Path(source_file).resolve().parent / "__pycache__"):
        return None
    from numba.misc.appdirs import AppDirs

    if _writable(Path(AppDirs(appname="numba", appauthor=False).user_cache_dir)):
        return None
    folder = fallback_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _writable(folder):
        raise RuntimeError(f"numba can cache theorylab's kernels nowhere: {Path(source_file).parent}/__pycache__, "
                           f"the user cache and {folder} are all unwritable; set NUMBA_CACHE_DIR to a writable folder")
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    from numba.core import config

    config.CACHE_DIR = str(folder)  # numba read its environment at import; its locators read this
    return str(folder)


def refresh_on_change(module_globals: dict, dependencies) -> list[str]:
    """Flush the on-disk cache of every cached kernel defined in a module when a file it depends
    on has changed; returns the names flushed.

    ``module_globals``: the caller's ``globals()``, after its decorators; ``dependencies``: the
    source files whose kernels it calls.  A fingerprint of those files (sha256 of their bytes)
    is kept beside each kernel's cache index (``<index>.deps``); when it differs, or cannot be
    read, the index is emptied (``Cache.flush``), so the kernel compiles afresh at its next call
    and is cached again with the new callee."""
    from numba.core.caching import FunctionCache
    from numba.core.dispatcher import Dispatcher

    h = hashlib.sha256()
    for dep in sorted(str(Path(d).resolve()) for d in dependencies):
        h.update(Path(dep).read_bytes())
    fingerprint = h.hexdigest()
    flushed = []
    for name, obj in list(module_globals.items()):
        cache = getattr(obj, "_cache", None)
        if not (isinstance(obj, Dispatcher) and isinstance(cache, FunctionCache)
                and obj.py_func.__module__ == module_globals.get("__name__")):
            continue
        index = Path(cache._cache_file._index_path)  # numba's index file of this kernel
        stamp = index.with_name(index.name + ".deps")
        try:
            current = stamp.read_text() == fingerprint
        except OSError:
            current = False
        if current:
            continue
        try:
            if index.exists():
                cache.flush()
                flushed.append(name)
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(fingerprint)
        except OSError:  # an unwritable cache: numba cannot save there either
            pass
    return flushed
