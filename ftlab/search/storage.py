"""Where a search's study lives, and the lock that makes "take the next queued trial" one step for all workers.

    default                 sqlite:///<study_dir>/study.db: nothing to start; one machine (SQLite needs working
                            file locks, which network file systems rarely give)
    --storage URL           PostgreSQL (postgresql://user:password@host:port/database): several machines
    --storage journal:PATH  Optuna's journal file: several machines sharing a file system, no server

Optuna keeps the study, its trials and their states in the storage. What it leaves to us is the queue: a study
holds N waiting trials, and study.ask() takes one (WAITING -> RUNNING) but creates a new trial when none is left,
and on SQLite (no row locks: Optuna's SELECT ... FOR UPDATE is a no-op there) two workers can take the same one.
So every worker takes trials, and tops the queue up, under one cross-process lock: a file lock beside the SQLite
file, Optuna's own NFS-safe symlink lock beside a journal file, a PostgreSQL advisory lock on the server.
"""
from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ftlab.errors import UserError

# A trial whose worker died (no heartbeat for the grace period) is failed and queued again with the same
# parameters, at most this many times: a trial that kills its worker every time (the kernel's OOM killer) must not
# loop forever.
MAX_RETRY = 3
JOURNAL_PREFIX = "journal:"


class StorageError(UserError):
    pass


def _quiet_optuna() -> None:
    import optuna

    # Heartbeats, the stale-trial retry and the matplotlib plots are marked experimental in Optuna (since 2.8-2.9);
    # the warnings say nothing a user can act on.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # search prints its own line per trial


def hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


class QueueLock:
    """A cross-process lock around a study's queue. release() may be called more than once, so that a trial
    can hand the lock back as soon as it has been taken from the queue."""

    def __init__(self, acquire: Callable[[], Any], release: Callable[[], Any]):
        self._acquire, self._release, self.held = acquire, release, False

    def acquire(self) -> None:
        self._acquire()
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._release()

    def __enter__(self) -> "QueueLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _file_lock(path: Path) -> QueueLock:
    from filelock import FileLock

    lock = FileLock(str(path))
    return QueueLock(lock.acquire, lock.release)


def _journal_lock(path: Path) -> QueueLock:
    # Optuna's lock for journal files on NFS (a symlink made atomically; taken over after 30 s if its holder died).
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path))
    return QueueLock(lock.acquire, lock.release)


def _postgres_lock(url: str, study_name: str) -> QueueLock:
    """A session-level advisory lock keyed by the study: the server drops it if the worker's connection dies."""
    import sqlalchemy

    key = int.from_bytes(hashlib.sha256(f"ftlab-search:{study_name}".encode()).digest()[:8], "big", signed=True)
    connection: list[Any] = []

    def acquire() -> None:
        # NullPool: the connection (and with it the lock, should release() never run) ends when it is closed.
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool,
                                          connect_args={"connect_timeout": 10})
        conn = engine.connect()
        try:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        except BaseException:
            conn.close()
            raise
        connection.append(conn)

    def release() -> None:
        conn = connection.pop()
        try:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        finally:
            conn.close()

    return QueueLock(acquire, release)


@dataclass
class Storage:
    optuna: Any  # an optuna.storages.BaseStorage
    lock: QueueLock
    display: str  # the URL without its password, for messages and records
    heartbeats: bool  # whether a dead worker's trial is detected (RDB storages) or stays RUNNING (journal)
    heartbeat_interval: int


def default_url(study_dir: Path) -> str:
    return f"sqlite:///{(study_dir / 'study.db').resolve()}"


def open_storage(url: Optional[str], study_dir: Path, study_name: str, heartbeat_interval: int,
                 grace_period: Optional[int]) -> Storage:
    """Connect (creating Optuna's tables if needed); a URL that is malformed, of an unsupported kind or not
    reachable is a StorageError, raised before any model is loaded."""
    import optuna

    _quiet_optuna()
    if url is None:
        study_dir.mkdir(parents=True, exist_ok=True)
        url = default_url(study_dir)
    display = hide_password(url)
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX):]).expanduser()
        if not path.name:
            raise StorageError(f"--storage {display}: give the journal file, e.g. journal:/shared/search.log")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = optuna.storages.journal.JournalFileBackend(str(path))
        except OSError as exc:
            raise StorageError(f"--storage {display}: cannot open the journal file: {exc}") from None
        # The journal has no heartbeats: a killed worker's trial stays RUNNING (docs/guide/search.md).
        return Storage(optuna.storages.JournalStorage(backend), _journal_lock(Path(f"{path}.queue")), display,
                       heartbeats=False, heartbeat_interval=heartbeat_interval)

    import sqlalchemy

    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise StorageError(f"--storage {display}: not a database URL (e.g. postgresql://user:password@host/db, "
                           f"sqlite:///path/study.db, or journal:PATH)") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise StorageError(f"--storage {display}: a SQLite storage must be a file (sqlite:///path/study.db)")
        lock = _file_lock(Path(f"{parsed.database}.lock"))
        # Workers wait for each other's writes instead of failing with "database is locked" after 5 s.
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    elif backend == "postgresql":
        if parsed.drivername == "postgresql":
            # SQLAlchemy's default PostgreSQL driver differs between versions (psycopg2 before 2.1); the
            # `postgres` extra installs psycopg 3, so plain URLs are pinned to it.
            parsed = parsed.set(drivername="postgresql+psycopg")
        url = parsed.render_as_string(hide_password=False)
        lock = _postgres_lock(url, study_name)
        engine_kwargs = {"connect_args": {"connect_timeout": 10}}  # an unreachable host fails in seconds
    else:
        raise StorageError(f"--storage {display}: search supports SQLite, PostgreSQL and journal:PATH storages "
                           f"(it locks the trial queue with their own mechanisms), not {backend}")
    try:
        # Under the lock: workers that start together on a new database would otherwise race to create Optuna's
        # tables (and all but one fail with "table already exists").
        with lock:
            storage = optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))
    except ImportError:
        raise StorageError(f"--storage {display}: no driver for {backend} installed (PostgreSQL: pip install -e "
                           f"'.[postgres]', which is psycopg 3)") from None
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StorageError(f"--storage {display}: cannot open: {reason}") from None
    return Storage(storage, lock, display, heartbeats=True, heartbeat_interval=heartbeat_interval)
