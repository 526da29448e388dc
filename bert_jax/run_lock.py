"""One run per workdir: WORKDIR/run.lock names the live run (host, process id, start time).

A second run on the same workdir stops at once naming the holder. Locally the lock is a kernel
lock (`flock`) on that file, so a holder that died (SIGKILL, a crashed host) releases it by
itself and the next run takes over with a warning. On object stores (gs://) there is no file
lock: the record is a lease that the holder renews every `heartbeat_seconds`; one not renewed
for `lease_seconds` is stale and taken over, and a holder that finds its lease taken stops.
Only process 0 of a job takes the lock; every process learns whether it got it.
"""

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

from absl import logging
from etils import epath

from bert_jax.data.shard_files import process_alive
from bert_jax.errors import UserError

RUN_LOCK = "run.lock"  # in the workdir, next to checkpoints/ (see workdir.py's layout)
HEARTBEAT_SECONDS = 30.0
LEASE_SECONDS = 300.0  # ten missed heartbeats: the holder is gone


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a workdir."""

    host: str
    pid: int
    start_time: float
    heartbeat: float
    token: str  # unique per run, so a holder recognises its own record

    @classmethod
    def this_process(cls, now: float) -> "Holder":
        token = f"{socket.gethostname()}:{os.getpid()}:{now:.6f}"
        return cls(socket.gethostname(), os.getpid(), now, now, token)

    def describe(self) -> str:
        started = datetime.datetime.fromtimestamp(self.start_time).isoformat(" ", "seconds")
        return f"process {self.pid} on host {self.host}, started {started}"


def _parse(text: str) -> Holder | None:
    try:
        return Holder(**json.loads(text))
    except (ValueError, TypeError):
        return None  # empty (released) or half-written: nobody holds it


class RunLock:
    """The lock on one workdir; `acquire` raises UserError naming a live holder."""

    def __init__(
        self,
        workdir: str,
        *,
        lease: bool | None = None,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
        settle_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
    ):
        self.path = epath.Path(workdir, RUN_LOCK)
        self.lease = "://" in str(workdir) if lease is None else lease
        self.heartbeat_seconds, self.lease_seconds = heartbeat_seconds, lease_seconds
        self.settle_seconds, self.clock = settle_seconds, clock
        self.holder: Holder | None = None
        self.lost: Holder | None = None  # set when another run took the lease over
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Acquiring.

    def acquire(self) -> None:
        me = Holder.this_process(self.clock())
        if self.lease:
            self._acquire_lease(me)
        else:
            self._acquire_local(me)
        self.holder = me
        self._thread = threading.Thread(target=self._heartbeats, name="run-lock", daemon=True)
        self._thread.start()

    def _refuse(self, holder: Holder | None) -> None:
        who = holder.describe() if holder else "another process"
        raise UserError(
            f"{self.path.parent} is in use by the run of {who} (see {self.path}); wait for it "
            "to finish or stop it, or choose another --workdir."
        )

    def _acquire_local(self, me: Holder) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _parse(self._read_fd(fd))
                os.close(fd)
                self._refuse(holder)
            except OSError as error:
                os.close(fd)
                if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
                    raise
                logging.warning("%s does not support file locks; using a lease.", self.path)
                self.lease = True
                return self._acquire_lease(me)
            # A releasing holder unlinks the file: retry if we locked a name no longer there.
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        previous = _parse(self._read_fd(fd))
        if previous is not None and previous.host != me.host and self._fresh(previous):
            os.close(fd)  # another host's run, renewing its lease: its filesystem may not
            self._refuse(previous)  # share file locks across hosts, so trust the heartbeat
        if previous is not None:
            state = "alive" if process_alive(previous.pid) else "gone"
            logging.warning(
                "Taking over %s from the run of %s, which ended without releasing it%s.",
                self.path, previous.describe(),
                "" if previous.host != me.host else f" (process {previous.pid} is {state})",
            )  # fmt: skip
        self._fd = fd
        self._write_fd(me)

    def _acquire_lease(self, me: Holder) -> None:
        previous = self._read()
        if previous is not None and self._fresh(previous):
            self._refuse(previous)
        if previous is not None:
            logging.warning(
                "Taking over the stale lease %s of the run of %s (no heartbeat for %.0f s).",
                self.path, previous.describe(), self.clock() - previous.heartbeat,
            )  # fmt: skip
        self._write(me)
        # Object stores have no atomic create-if-absent here: two runs that wrote at once
        # both re-read after a pause, and only the last writer goes on.
        time.sleep(self.settle_seconds)
        current = self._read()
        if current is None or current.token != me.token:
            self._refuse(current)

    def _fresh(self, holder: Holder) -> bool:
        return self.clock() - holder.heartbeat < self.lease_seconds

    # Keeping it.

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            self.renew()

    def renew(self) -> None:
        """Rewrites the record with a new heartbeat; notices a lease taken over."""
        if self.holder is None or self.lost is not None:
            return
        try:
            if self.lease:
                current = self._read()
                if current is not None and current.token != self.holder.token:
                    self.lost = current
                    logging.error("%s was taken over by the run of %s.", self.path,
                                  current.describe())  # fmt: skip
                    return
            self.holder = dataclasses.replace(self.holder, heartbeat=self.clock())
            self._write_fd(self.holder) if self._fd is not None else self._write(self.holder)
        except OSError as error:  # a full disk must not kill the run: the lease just ages
            logging.warning("Could not renew %s: %s", self.path, error)

    def release(self) -> None:
        """Removes the record; a clean exit leaves no lock behind."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.holder is None:
            return
        try:
            if self._fd is not None:
                os.unlink(self.path)  # while still locked: a waiter then retries on a new file
                os.close(self._fd)
                self._fd = None
            elif self.lost is None:
                current = self._read()
                if current is not None and current.token == self.holder.token:
                    self.path.unlink()
        except OSError as error:
            logging.warning("Could not remove %s: %s", self.path, error)
        self.holder = None

    # Storage.

    @staticmethod
    def _read_fd(fd: int) -> str:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 65536).decode(errors="replace")

    def _write_fd(self, holder: Holder) -> None:
        data = (json.dumps(dataclasses.asdict(holder)) + "\n").encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def _read(self) -> Holder | None:
        try:
            return _parse(self.path.read_text())
        except FileNotFoundError:
            return None

    def _write(self, holder: Holder) -> None:
        self.path.write_text(json.dumps(dataclasses.asdict(holder)) + "\n")


@contextlib.contextmanager
def hold(workdir: str, **options) -> Iterator[RunLock | None]:
    """Holds the workdir for the body; creates it if needed, and removes it again if it was
    created here and nothing else was written into it. Every process of a multi-process job
    enters or raises together (process 0 takes the lock, the others learn the outcome)."""
    import jax  # here, so that the lock itself needs no accelerator runtime
    import numpy as np

    root = epath.Path(workdir)
    created = not root.exists()
    lock, error = None, None
    if jax.process_index() == 0:
        try:
            root.mkdir(parents=True, exist_ok=True)
            lock = RunLock(workdir, **options)
            lock.acquire()
        except UserError as refused:
            error, lock = refused, None
        except OSError as failed:
            error, lock = _unwritable(workdir, failed), None
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        refused = multihost_utils.broadcast_one_to_all(np.int32(error is not None))
        if refused and error is None:
            error = UserError(f"process 0 could not take {workdir}; see its log for why.")
    if error is not None:
        _remove_if_empty(root, created and jax.process_index() == 0)
        raise error
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()
            _remove_if_empty(root, created)


def _unwritable(workdir: str, error: OSError) -> UserError:
    return UserError(
        f"--workdir={workdir} cannot be written ({error.strerror or error}); choose a writable "
        "directory or free space."
    )


def _remove_if_empty(root: epath.Path, created: bool) -> None:
    """A run that failed before writing anything leaves no directory it created."""
    if created:
        with contextlib.suppress(OSError):
            if root.exists() and not any(root.iterdir()):
                root.rmdir()
