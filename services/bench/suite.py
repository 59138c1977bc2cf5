"""The measured stack: auth, audit and loans as processes on free ports, over fresh databases.

Each service runs as `python -m services.cli serve NAME`, loans with `--workers N`.
Its CPU time and resident memory come from /proc: a service is the process started
here plus every process below it, so several loans workers count as one service.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.bench.phases import Connections
from services.embedded_pg import EmbeddedPostgres, require_reachable
from services.shared.db import database_url
from services.shared.ports import free_port

__all__ = ["Suite", "running_suite", "tree_cpu_seconds"]

SERVICES = ("auth", "audit", "loans")  # start order: loans needs the other two
_START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Suite:
    """Where the running services listen, their audit database, and their shared secret."""

    ports: dict[str, int]
    audit_url: str
    service_secret: str
    pids: dict[str, int]
    database_urls: dict[str, str]
    loans_workers: int = 1

    def target(self, name: str) -> str:
        """The address of one service."""
        return f"127.0.0.1:{self.ports[name]}"

    def loans_channel(self, callers: int) -> grpc.Channel:
        """A channel to loans for that many concurrent callers.

        One connection to one process; with several workers, one connection per
        caller: the kernel gives each connection to one worker, so a single one would
        load a single worker.
        """
        if self.loans_workers == 1:
            return grpc.insecure_channel(self.target("loans"))
        return Connections(self.target("loans"), callers)

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds of each service (its whole process tree) and of this client."""
        used = tree_cpu_seconds(self.pids)
        mine = os.times()
        used["client"] = mine.user + mine.system
        return used

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of each service (its whole process tree) in MiB, from /proc."""
        processes = _processes()
        return {
            name: round(sum(_rss_kib(pid) for pid in _tree(root, processes)) / 1024, 1)
            for name, root in self.pids.items()
        }


@contextlib.contextmanager
def running_suite(model: str, database: str, loans_workers: int) -> Iterator[Suite]:
    """The three services as processes on free ports, over fresh databases."""
    with (
        tempfile.TemporaryDirectory(prefix="loansuite-bench-") as tmp,
        _databases(database, Path(tmp)) as urls,
    ):
        ports = {name: free_port() for name in SERVICES}
        # Chosen here rather than left to the data directory, so that the bench
        # can ask auth for a service token itself.
        secret = secrets.token_urlsafe(32)
        env = {
            # The benchmark measures its own plaintext suite, whose clients are plaintext too:
            # LOANSUITE_TLS_* would name one certificate for all three services.
            **{k: v for k, v in os.environ.items() if not k.startswith("LOANSUITE_TLS_")},
            "LOANSUITE_DATA_DIR": tmp,
            "LOANSUITE_SERVER_MODEL": model,
            "LOANSUITE_SERVICE_SECRET": secret,
            **{f"LOANSUITE_{n.upper()}_PORT": str(p) for n, p in ports.items()},
            # Free side ports, so a suite running on the default ones is left alone.
            **{f"LOANSUITE_{n.upper()}_HTTP_PORT": "0" for n in ports},
            "LOANSUITE_DRAIN_SECONDS": "0",
            **{f"LOANSUITE_{n.upper()}_DATABASE_URL": u for n, u in urls.items()},
        }
        workers = {"auth": 1, "audit": 1, "loans": loans_workers}
        processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for name in SERVICES:
                log = Path(tmp) / f"{name}.log"
                processes[name] = _start(name, workers[name], env, log)
                _wait_listening(processes[name], ports[name], workers[name], log)
            pids = {n: p.pid for n, p in processes.items()}
            yield Suite(ports, urls["audit"], secret, pids, urls, loans_workers)
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                process.wait(30)


def _start(name: str, workers: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "services.cli", "serve", name]
    if name == "loans":
        command += ["--workers", str(workers)]
    with log.open("wb") as out:  # the child keeps its own
        return subprocess.Popen(command, env=env, stdout=out, stderr=out)


@contextlib.contextmanager
def _databases(database: str, tmp: Path) -> Iterator[dict[str, str]]:
    if database == "sqlite":
        yield {n: f"sqlite:///{tmp / f'{n}.db'}" for n in SERVICES}
        return
    suffix = uuid.uuid4().hex[:8]
    created = {n: f"loansuite_bench_{n}_{suffix}" for n in SERVICES}
    with _postgres(tmp) as admin_dsn:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            for db in created.values():
                conn.execute(f'CREATE DATABASE "{db}"')
        try:
            yield {n: database_url(admin_dsn, db) for n, db in created.items()}
        finally:
            with psycopg.connect(admin_dsn, autocommit=True) as conn:
                for db in created.values():
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@contextlib.contextmanager
def _postgres(tmp: Path) -> Iterator[str]:
    """LOANSUITE_BENCH_PG's server, which must answer; else a durable embedded one."""
    if configured := os.environ.get("LOANSUITE_BENCH_PG"):
        yield require_reachable(configured, "LOANSUITE_BENCH_PG")
        return
    with EmbeddedPostgres(tmp / "postgres") as server:
        yield server.admin_dsn


def _wait_listening(process: subprocess.Popen[bytes], port: int, listeners: int, log: Path) -> None:
    """Wait until the service answers SERVING and `listeners` of its processes hold the port.

    Health alone is not enough with several workers: the first one up answers
    for the port while the others are still importing.
    """
    deadline = time.monotonic() + _START_TIMEOUT
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}: {tail}")
            with contextlib.suppress(grpc.RpcError):
                serving = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1
                if serving and _listeners(process.pid, port) >= listeners:
                    return
            time.sleep(0.1)
    raise RuntimeError(f"no service came up on port {port}")


def _listeners(root: int, port: int) -> int:
    """How many processes of root's tree hold a listening socket on port (Linux /proc)."""
    listening = _listening_inodes(port)
    count = 0
    for pid in _tree(root, _processes()):
        with contextlib.suppress(OSError):  # the process ended while we looked
            fds = Path(f"/proc/{pid}/fd").iterdir()
            if any(_readlink(fd) in listening for fd in fds):
                count += 1
    return count


def _listening_inodes(port: int) -> set[str]:
    """The inodes of the TCP sockets listening on port, as /proc/<pid>/fd links name them."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()  # local address, remote address, state (0A: LISTEN)
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    return inodes


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def tree_cpu_seconds(pids: Mapping[str, int]) -> dict[str, float]:
    """User + system CPU seconds of each named process with every process below it."""
    processes = _processes()
    ticks = os.sysconf("SC_CLK_TCK")
    return {name: _tree_ticks(pid, processes) / ticks for name, pid in pids.items()}


def _processes() -> dict[int, tuple[int, int]]:
    """Every process's parent pid and CPU ticks (user + system), from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        found[int(stat.parent.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return found


def _tree(root: int, processes: dict[int, tuple[int, int]]) -> list[int]:
    """root and every process below it."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (parent, _) in processes.items():
        children[parent].append(pid)
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending += children[pid]
    return tree


def _tree_ticks(root: int, processes: dict[int, tuple[int, int]]) -> int:
    return sum(processes[pid][1] for pid in _tree(root, processes) if pid in processes)


def _rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB; 0 once it has ended."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
