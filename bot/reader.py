"""Reading a backlog's mail in a process of its own.

Parsing and classifying take a few milliseconds of CPU a message (handlers/cases/reading.py). In
a thread they share the interpreter lock with the event loop, so while a backlog is read the
outbox posts almost nothing. `MailReader` reads each batch in one worker process instead, while
the watcher fetches the next batch and the event loop stores the one before: reading, storing
and posting then overlap, each on its own CPU when there is one.

- One worker (`concurrent.futures.ProcessPoolExecutor`, spawned: no copy of the bot's threads or
  connections), started by the first batch and stopped by `release()` when the backlog is in
  (the watcher calls it before it waits for new mail): the ~50 MB it costs (the worker and
  multiprocessing's helper process) are held only while there is a backlog. The watcher uses it
  for a backlog only (`bot.mailbox.READ_AHEAD_FROM`); a burst of mail, and single messages as
  IDLE brings them, are read in the bot's own process.
- The worker imports handlers.cases.reading only (the parser, the classifier and its model), and
  gets nothing but raw bytes and the two intake rules reading needs.
- Whatever goes wrong in the worker (an exception, a worker that died) fails that batch's
  future only: the watcher reads that batch in the bot's own process as before, and the next
  batch starts a new worker if the old one is gone. No mail depends on the worker.
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from handlers.cases.reading import Read, read_all

__all__ = ["MailReader"]

logger = logging.getLogger(__name__)


class MailReader:
    """Reads batches of raw messages in a worker process (`submit`); see the module docstring."""

    def __init__(self, *, authserv_id: str | None, own_domain: str) -> None:
        self.authserv_id = authserv_id
        self.own_domain = own_domain
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self.started = 0  # workers started so far (for tests and the log)

    @property
    def running(self) -> bool:
        """Whether a worker is started (or starting)."""
        return self._pool is not None

    def submit(self, raws: list[bytes]) -> Future[list[Read]]:
        """Start reading `raws` in the worker; the future holds their reads, in order, or the
        error that stopped it (then read them elsewhere)."""
        with self._lock:
            if self._pool is None:
                _main_as_a_package_main()
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn")
                )
                self.started += 1
                logger.info("reading the backlog in a worker process")
            pool = self._pool
        try:
            return pool.submit(read_all, raws, self.authserv_id, self.own_domain)
        except (BrokenProcessPool, RuntimeError) as e:  # it died (or was released) meanwhile
            self._drop(pool, e)
            failed: Future[list[Read]] = Future()
            failed.set_exception(e)
            return failed

    def failed(self, error: BaseException) -> None:
        """A batch's reading failed with `error`: if the worker is gone, the next batch starts
        another."""
        if isinstance(error, BrokenProcessPool):
            with self._lock:
                pool = self._pool
            if pool is not None:
                self._drop(pool, error)

    def release(self) -> None:
        """Stop the worker (the backlog is in); the next batch starts a new one."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            logger.info("backlog read: the worker process stops")

    def _drop(self, pool: ProcessPoolExecutor, error: BaseException) -> None:
        with self._lock:
            if self._pool is not pool:
                return
            self._pool = None
        logger.warning(
            "the worker process reading mail stopped (%s); it is started again", type(error).__name__
        )
        pool.shutdown(wait=False, cancel_futures=True)


def _main_as_a_package_main() -> None:
    """Keep a spawned worker from importing the bot's command line again.

    multiprocessing's spawn has the worker import the parent's `__main__` module once more. For
    `python -m bot run` it skips that (a package's `__main__` runs its code unguarded, so spawn
    never imports one). For the installed `privacy-desk` script it would import the script and,
    with it, the whole command line (about 20 MB more in the worker). The script stands for
    `python -m bot`, so it is named so (`__main__.__spec__`, which spawn reads to choose); a
    `__main__` that already has a spec is left as it is."""
    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None and hasattr(main, "__file__"):
        main.__spec__ = importlib.util.find_spec("bot.__main__")
