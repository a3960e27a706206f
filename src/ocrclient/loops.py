"""Blocking calls over async code: where the synchronous API runs its coroutines, and the one
rule for calling it while an event loop runs.

* :class:`LoopThread` — an event loop in a daemon thread of its own.  A
  :class:`~ocrclient.Client` runs every call on one, so its backend's connections, its cache and
  its concurrency limit live on one loop across calls (and across the threads that call it).
  The caller's context variables are seen by the work; an interrupt while waiting (Ctrl-C, a
  notebook's stop button) cancels the work, waits for it to wind down, and is raised.
* :func:`refuse_in_loop` — THE rule: a blocking call in a thread whose event loop is running
  raises :class:`~ocrclient.errors.UsageError` naming the async twin to await instead (blocking
  there would stall every other task of that loop: a FastAPI server, an ``asyncio.run`` program).
  The one exception is a Jupyter/IPython kernel, whose loop runs while a cell executes: there the
  cell waiting for the result is what the user wants.
* :func:`run_sync` — a coroutine run to completion from synchronous code under that rule.
* :class:`PerLoop` — one value per event loop, for what outlives loops (a loaded backend lent to
  one client after another): its HTTP pools, a lock its requests wait on.
* :func:`despite_cancel` — work under way in a thread awaited to its end even when the awaiting
  task is cancelled meanwhile (a reply in hand parsed, a finished page written to the cache).

Example::

    >>> import asyncio
    >>> async def answer() -> int:
    ...     return 42
    >>> run_sync(answer(), "answer()", "await answer()")
    42
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures as cf
import contextlib
import contextvars
import os
import sys
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

from .errors import CancelledRunError, UsageError

__all__ = [
    "LoopThread",
    "PerLoop",
    "at_loop_shutdown",
    "despite_cancel",
    "in_ipython_kernel",
    "left_behind_on_stop",
    "refuse_in_loop",
    "run_sync",
    "running_loop",
]

_T = TypeVar("_T")

#: the loops of our own threads: a blocking call from one of them (an ``on_event`` callback
#: calling its Client) would wait on itself
_OWN_LOOPS: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


async def despite_cancel(work: asyncio.Future[Any]) -> bool:
    """Wait for ``work`` (a thread's, under way: :func:`asyncio.to_thread` wrapped in a future) to
    end, and say whether this task was cancelled meanwhile: a cancel then waits for the work
    instead of abandoning it, and the caller decides what the cancel still stops.  The work's
    result, or its exception, is ``work.result()``; a cancel of ``work`` itself is raised."""
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        if work.cancelled():
            raise
        await asyncio.wait([work])
        return True
    except Exception:  # the work's own: work.result() raises it
        return False
    return False


async def left_behind_on_stop(func: Callable[..., _T], *args: Any) -> _T:
    """``func(*args)`` in a daemon thread of its own, awaited: a long call nothing can interrupt
    (the embedded engine reading a 14,000-point-tall page, 25 s) that a stopped run leaves
    behind rather than waits for.  With :func:`asyncio.to_thread` it ran on the loop's default
    executor, which ``asyncio.run`` waits for as it ends and whose threads the interpreter joins
    at exit: Ctrl-C took 24 s to end ``ocr convert``, and ``Client.close()`` as long."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, exc: BaseException | None) -> None:
        if not future.done():  # (cancelled: the run stopped)
            future.set_exception(exc) if exc is not None else future.set_result(result)

    def run() -> None:
        try:
            result, exc = context.run(func, *args), None
        except BaseException as error:  # handed to the awaiting task
            result, exc = None, error
        with contextlib.suppress(RuntimeError):  # (the loop has ended: no one waits for it)
            loop.call_soon_threadsafe(settle, result, exc)

    thread = threading.Thread(target=run, name="ocrclient-left-behind-on-stop", daemon=True)
    with _LEFT_LOCK:
        if not _LEFT:
            atexit.register(_wait_for_left_behind)  # (once a set empties and fills again: idempotent below)
        _LEFT.add(thread)
    thread.start()
    return await future


#: the threads :func:`left_behind_on_stop` started that may still run
_LEFT: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
_LEFT_LOCK = threading.Lock()


def _wait_for_left_behind() -> None:
    """At exit, wait for the calls stopped runs left behind: a thread still in the embedded
    engine's native code while the interpreter tears its objects down aborts the process
    ("terminate called without an active exception", exit 134).  Not when the process ends
    without a teardown (the ``ocr`` command: :func:`ocrclient.console.leaving_at_once`)."""
    atexit.unregister(_wait_for_left_behind)
    console = sys.modules.get("ocrclient.console")
    if console is not None and console.leaving_at_once():
        return
    with _LEFT_LOCK:
        threads = list(_LEFT)
    for thread in threads:
        thread.join()


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or ``None``."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class PerLoop(Generic[_T]):
    """One value per event loop (``None`` standing for "no loop runs here"), made by ``make`` the
    first time a loop asks: what belongs to one loop (an HTTP pool's connections, an
    ``asyncio.Lock`` once waited on) for an object that outlives loops (a loaded backend).  The
    values of loops that have closed are dropped as the next is made.  Safe to share between
    threads that each run a loop."""

    def __init__(self, make: Callable[[], _T]) -> None:
        self._make = make
        self._values: dict[asyncio.AbstractEventLoop | None, _T] = {}
        self._lock = threading.Lock()

    def get(self, *, any_outside: bool = False) -> _T:
        """The running loop's value, made now if it has none; with ``any_outside``, outside any
        loop the value made last, if there is one."""
        loop = running_loop()
        with self._lock:
            if loop in self._values:
                return self._values[loop]
            if loop is None and any_outside and self._values:
                return next(reversed(self._values.values()))
            for ended in [k for k in self._values if k is not None and k.is_closed()]:
                del self._values[ended]
            value = self._values[loop] = self._make()
            return value

    def loops(self) -> list[asyncio.AbstractEventLoop | None]:
        """The loops that have a value now."""
        with self._lock:
            return list(self._values)

    def pop(self) -> _T | None:
        """The running loop's value, forgotten (``None`` if it had none)."""
        with self._lock:
            return self._values.pop(running_loop(), None)

    def drain(self) -> list[tuple[asyncio.AbstractEventLoop | None, _T]]:
        """Every value with its loop, all forgotten."""
        with self._lock:
            values, self._values = list(self._values.items()), {}
        return values


def at_loop_shutdown(aclose: Callable[[], Awaitable[Any]]) -> AsyncGenerator[None, None]:
    """An async generator, started now on the running loop, that awaits ``aclose()`` when that
    loop shuts its generators down (``asyncio.run`` and :class:`LoopThread` do as they end, the
    loop still running); the caller holds it (let go, it is finalized at once).  For what a
    :class:`PerLoop` value holds open: a backend lent to one ``asyncio.run`` after another kept
    every ended loop's HTTP connections open until the garbage collector found them (11 sockets
    after 20 runs), out of reach of the backend's ``close()``."""

    async def hold() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await aclose()

    keeper = hold()
    with contextlib.suppress(StopIteration):  # (it yields at once: its first step runs here)
        keeper.__anext__().send(None)
    return keeper


def in_ipython_kernel() -> bool:
    """Whether this process is a Jupyter/IPython kernel (ipykernel's shell is active)."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def refuse_in_loop(what: str, twin: str) -> None:
    """Raise :class:`UsageError` if ``what`` (a blocking call) is made in a thread whose event
    loop is running, unless that loop is a Jupyter/IPython kernel's."""
    loop = running_loop()
    if loop is None:
        return
    if loop not in _OWN_LOOPS and in_ipython_kernel():
        return
    raise UsageError(
        f"{what} blocks, and an event loop is running in this thread: use {twin} instead "
        "(a blocking call is allowed where no loop runs, and in a Jupyter/IPython kernel)"
    )


def run_sync(coro: Coroutine[Any, Any, _T], what: str, twin: str) -> _T:
    """Run ``coro`` to completion from synchronous code (see :func:`refuse_in_loop`): with
    :func:`asyncio.run` where no loop runs, on a loop thread of its own in a kernel."""
    try:
        refuse_in_loop(what, twin)
    except UsageError:
        coro.close()  # never started: no "coroutine was never awaited" warning
        raise
    if running_loop() is None:
        return asyncio.run(coro)
    thread = LoopThread(name="ocrclient-run")
    try:
        return thread.call(coro)
    finally:
        thread.stop()


class LoopThread:
    """An event loop in a daemon thread, started on first use; :meth:`call` runs a coroutine on
    it and waits; :meth:`stop` cancels what is left and ends the thread."""

    def __init__(self, name: str = "ocrclient-client") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()  # (its thread does not live on in a forked child)
        self._stopped = False
        #: set on the loop as the client's close begins (:meth:`close_to_new_calls`): a call not
        #: yet running is refused from then on, as after :meth:`stop`
        self._closing = False
        #: the async generators :meth:`iterate` runs, not yet finished (closed one by one, the
        #: outermost first, when the thread ends: see :func:`_serve`)
        self._agens: weakref.WeakSet[AsyncGenerator[Any, None]] = weakref.WeakSet()
        #: the calls running on the loop (:meth:`cancel_calls`)
        self._calls: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    def _start(self) -> asyncio.AbstractEventLoop:
        if self._loop is not None and self._pid != os.getpid():  # (a child waited forever on it)
            raise UsageError("this client was used in the process it was forked from; make a new one in this process")
        if self.in_thread():  # an on_event callback calling its own client: it waited for itself
            raise UsageError("a blocking client call from inside one of its own runs (an on_event callback) "
                             "would wait for itself; call it after the run returns")
        with self._lock:
            if self._stopped or self._closing:
                raise UsageError(CLOSED)
            if self._loop is None:
                loop = asyncio.new_event_loop()
                _OWN_LOOPS.add(loop)
                thread = threading.Thread(target=_serve, args=(loop, self._agens), name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def in_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """``coro``'s result (or exception), run on the loop with the caller's context variables.
        An interrupt while waiting cancels it, waits for it to wind down, and is raised here."""
        try:
            loop = self._start()
        except BaseException:
            coro.close()
            raise
        done: cf.Future[_T] = cf.Future()
        tasks: list[asyncio.Task[_T]] = []
        context = contextvars.copy_context()

        def start() -> None:
            if self._stopped or self._closing:  # the client closed since _start: not begun
                coro.close()
                done.set_exception(UsageError(CLOSED))
                return
            task = loop.create_task(_carrying(coro), context=context)
            tasks.append(task)
            self._calls.add(task)
            task.add_done_callback(lambda t: _settle(t, done, coro))

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop closed since _start (the client's close ended meanwhile)
            coro.close()
            raise UsageError(CLOSED) from None
        try:
            # in slices: a SIGINT delivered to another thread does not wake a blocked wait, but
            # this thread handles it as soon as it runs Python code again
            while not done.done():
                cf.wait([done], timeout=0.1)
                if not done.done() and self._ended():
                    coro.close()  # start() never ran: the loop ended first
                    raise UsageError(CLOSED)
        except UsageError:
            raise
        except BaseException:
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in tasks])  # after start()
            cf.wait([done])
            raise
        exc = done.exception()
        if isinstance(exc, _Carried):  # the work's sys.exit() / KeyboardInterrupt, raised here
            raise exc.exc
        return done.result()

    def iterate(self, agen: AsyncGenerator[_T, None]) -> Generator[_T, None, None]:
        """The items of ``agen`` (an async generator to be run on this loop), one :meth:`call`
        each; closing the iterator (or leaving it) closes ``agen`` on the loop."""
        self._agens.add(agen)
        try:
            while True:
                item = self.call(_next(agen))
                if item is _END:
                    return
                yield item
        finally:
            self._close_agen(agen)

    def _ended(self) -> bool:
        """Whether the loop's thread has ended (what is still queued on the loop never runs)."""
        thread = self._thread
        return thread is not None and not thread.is_alive()

    def close_to_new_calls(self) -> None:
        """Refuse every call not yet running on the loop (:class:`UsageError`), from now on;
        called on the loop as the client's close begins, so that a call made meanwhile from
        another thread meets a closed client, not the backend closing under it."""
        self._closing = True

    def _close_agen(self, agen: AsyncGenerator[Any, None]) -> None:
        if self._stopped or self._closing or self._loop is None:
            return  # the loop's shutdown finalizes what is left
        if self.in_thread():  # collected on the loop's own thread: cannot wait for itself
            self._loop.create_task(agen.aclose())
            return
        self.call(agen.aclose())

    async def cancel_calls(self) -> None:
        """Cancel the calls running on the loop (each raises :class:`CancelledRunError` to its
        caller) and wait for them to wind down; run on the loop, by a call of its own."""
        me = asyncio.current_task()
        calls = [task for task in self._calls if task is not me and not task.done()]
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)

    def stop(self) -> None:
        """End the thread (what still runs on it is cancelled); later calls raise UsageError."""
        with self._lock:
            self._stopped = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not threading.current_thread():
            thread.join(timeout=60)

    def stop_soon(self) -> None:
        """Ask the thread to end without waiting (for a garbage-collected client)."""
        with self._lock:
            self._stopped = True
            loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)


#: what a blocking client's call raises once the client is closed, however it meets the close
CLOSED = "this client is closed"

#: what :func:`_next` returns at the end of an async generator
_END: Any = object()


async def _next(agen: AsyncGenerator[_T, None]) -> _T:
    try:
        return await agen.__anext__()
    except StopAsyncIteration:
        return _END


class _Carried(Exception):
    """A ``SystemExit`` or ``KeyboardInterrupt`` the work raised on the loop's thread (an
    ``on_event`` callback's ``sys.exit()``), carried to the caller's thread as an ordinary
    exception and raised there: raised out of a task, it ended the loop and its thread."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(repr(exc))
        self.exc = exc


async def _carrying(coro: Coroutine[Any, Any, _T]) -> _T:
    try:
        return await coro
    except (SystemExit, KeyboardInterrupt) as exc:
        raise _Carried(exc) from None


def _settle(task: asyncio.Task[_T], done: cf.Future[_T], coro: Coroutine[Any, Any, _T]) -> None:
    if task.cancelled():  # the client closed under the call (a caller's own interrupt raises itself)
        coro.close()  # (a task cancelled before its first step never started it: no warning of that)
        done.set_exception(CancelledRunError("the client was closed while this call was running"))
    elif (exc := task.exception()) is not None:
        done.set_exception(exc)
    else:
        done.set_result(task.result())


def _serve(loop: asyncio.AbstractEventLoop, agens: weakref.WeakSet[AsyncGenerator[Any, None]]) -> None:
    """The loop thread: run until stopped, then cancel what is left, close the iterations left
    unfinished (each closes the generators it nests: the loop's own shutdown closed them all at
    once, and each inner one, already being closed by its outer, logged "aclose(): asynchronous
    generator is already running") and close the loop."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            for agen in list(agens):
                with contextlib.suppress(Exception):
                    loop.run_until_complete(agen.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
