"""Worker processes that never run the user's ``__main__``.

Library code must not require ``if __name__ == "__main__":`` in the program that calls it.  Yet
``multiprocessing``'s ``spawn`` and ``forkserver`` start methods hand each child the parent's
main module (its file, or its name under ``python -m``), and the child executes it before
anything else: a plain script that calls ``ocrclient.convert`` would convert again in every
render worker (and die there: a process that is still starting may not start processes), a
script read from stdin names a file ``<stdin>`` that does not exist, a server script would
start a second server.

:func:`library_context` returns a ``forkserver`` context whose processes never get it:

* its fork server is this module's own (not ``multiprocessing``'s process-wide one, whose preload
  list belongs to the application), and it imports only the modules it is asked to preload,
  never ``__main__``;
* each child is given the usual preparation data (``sys.path``, working directory, authkey, ...)
  minus :data:`MAIN_KEYS`.

Such processes can run the functions of importable modules (the library's own), which is all a
library's pool needs.  Forking from the fork server is safe however many threads the caller
runs (the server is a fresh single-threaded interpreter), and once it runs a worker starts in
milliseconds.  Where ``forkserver`` does not exist (Windows) this is plain ``spawn``, which still
runs ``__main__``: the standard library has no other way there.

The fork server imports its preload list on the ``sys.path`` a fresh interpreter gets from the
environment (CPython's fork server ignores the caller's changes to ``sys.path`` made at run
time; each worker gets them, as usual, before it runs anything).  So a package reached only
through such a change is imported by each worker instead, a little later; but if *another* copy
of it is installed, the server preloads that copy.  Put a development checkout on ``PYTHONPATH``
(or install it) rather than on ``sys.path``.

The launch below is :meth:`multiprocessing.popen_forkserver.Popen._launch` with the preparation
data filtered; that method reads the same in CPython 3.11 to 3.14.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import threading
from collections.abc import Sequence
from multiprocessing import context as mp_context
from typing import Any

__all__ = ["MAIN_KEYS", "library_context"]

#: keys of ``multiprocessing.spawn.get_preparation_data`` that make a child run ``__main__``
MAIN_KEYS = ("init_main_from_path", "init_main_from_name")

_HAVE_FORKSERVER = "forkserver" in multiprocessing.get_all_start_methods()
_lock = threading.Lock()
#: this module's fork server (a ``multiprocessing.forkserver.ForkServer``), made on first use
_server: Any = None


def library_context(preload: Sequence[str] = ()) -> multiprocessing.context.BaseContext:
    """The multiprocessing context whose processes never import the caller's ``__main__``.

    ``preload`` adds modules for the fork server to import once, so that each worker starts with
    them loaded; like ``set_forkserver_preload`` it counts only until the server has started
    (on the first process).  The server stops when this process exits.

    Example::

        >>> from concurrent.futures import ProcessPoolExecutor
        >>> with ProcessPoolExecutor(2, mp_context=library_context(["json"])) as ex:  # doctest: +SKIP
        ...     list(ex.map(abs, [-1, -2]))
        [1, 2]
    """
    global _server
    if not _HAVE_FORKSERVER:  # pragma: no cover - Windows
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver

    with _lock:
        if _server is None:
            _server = forkserver.ForkServer()
            _server.set_forkserver_preload([__name__])
        known = list(_server._preload_modules)
        wanted = [m for m in preload if m != "__main__" and m not in known]
        if wanted:
            _server.set_forkserver_preload(known + wanted)
    return _CONTEXT


def _close_fds(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


if _HAVE_FORKSERVER:
    from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util

    class _Popen(popen_forkserver.Popen):
        """``popen_forkserver.Popen`` through this module's fork server, without ``__main__``."""

        _fds: list[int]  # set by popen_forkserver.Popen.__init__

        def _launch(self, process_obj: Any) -> None:
            prep_data = spawn.get_preparation_data(process_obj._name)
            for key in MAIN_KEYS:
                prep_data.pop(key, None)
            buf = io.BytesIO()
            mp_context.set_spawning_popen(self)
            try:
                reduction.dump(prep_data, buf)
                reduction.dump(process_obj, buf)
            finally:
                mp_context.set_spawning_popen(None)
            self.sentinel, w = _server.connect_to_new_process(self._fds)
            # a duplicate of the data pipe's write end: the child's sentinel of its parent
            parent_w = os.dup(w)
            self.finalizer = util.Finalize(self, _close_fds, (parent_w, self.sentinel))
            with open(w, "wb", closefd=True) as f:
                f.write(buf.getbuffer())
            self.pid = forkserver.read_signed(self.sentinel)

    class LibraryProcess(mp_context.ForkServerProcess):
        """A process forked by this module's fork server (pickled by reference: module level)."""

        @staticmethod
        def _Popen(process_obj: Any) -> Any:
            return _Popen(process_obj)

    class LibraryContext(mp_context.ForkServerContext):
        """A ``forkserver`` context whose processes never run ``__main__``."""

        Process = LibraryProcess

    _CONTEXT: multiprocessing.context.BaseContext = LibraryContext()
