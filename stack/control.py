"""Start, stop and inspect the stack's processes (pid files under .stack/run, logs under .stack/logs)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import config, probes
from .services import SERVICES, Echo, Service, StackError

_children: dict[str, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Status:
    name: str
    port: int
    pid: int | None
    state: str  # up | starting | down | external | absent
    note: str = ""

    @property
    def up(self) -> bool:
        return self.state in ("up", "external")


def _pid_file(cfg: config.Config, name: str) -> Path:
    return cfg.run_dir / f"{name}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _pid(cfg: config.Config, name: str) -> int | None:
    try:
        pid = int(_pid_file(cfg, name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _select(names: Iterable[str] | None) -> list[Service]:
    names = list(names or ())
    if not names:
        return list(SERVICES.values())
    unknown = [name for name in names if name not in SERVICES]
    if unknown:
        raise StackError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICES)}")
    return [SERVICES[name] for name in names]


@contextlib.contextmanager
def _locked(cfg: config.Config) -> Iterator[None]:
    """One stack operation at a time (pytest workers and a shell may race to start the same service)."""
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    with (cfg.run_dir / "lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def service_status(svc: Service, cfg: config.Config | None = None) -> Status:
    cfg = cfg or config.load()
    port = svc.port(cfg)
    why_absent = svc.available(cfg)
    pid = _pid(cfg, svc.name)
    if pid is not None:
        return Status(svc.name, port, pid, "up" if svc.ready(cfg) else "starting")
    if probes.port_open(port):
        note = "answers" if svc.ready(cfg) else "port busy, does not answer"
        return Status(svc.name, port, None, "external", f"not started by this stack; {note}")
    if why_absent:
        return Status(svc.name, port, None, "absent", why_absent)
    return Status(svc.name, port, None, "down")


def status(names: Iterable[str] | None = None) -> list[Status]:
    cfg = config.load()
    return [service_status(svc, cfg) for svc in _select(names)]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return "\n".join(f"    {line}" for line in text)


def _failure(svc: Service, cfg: config.Config, what: str) -> str:
    logs = svc.logs(cfg)
    message = f"{svc.name} {what}; see {' and '.join(str(log) for log in logs)}"
    for log in logs:
        if log.exists():
            message += f"\n  last lines of {log}:\n{_tail(log)}"
    return message


def _spawn(svc: Service, cfg: config.Config) -> subprocess.Popen[bytes]:
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    argv = svc.command(cfg)
    with svc.log(cfg).open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=cfg.root, env=svc.env(cfg), start_new_session=True,
        )  # fmt: skip
    _children[svc.name] = proc
    _pid_file(cfg, svc.name).write_text(f"{proc.pid}\n")
    return proc


def _wait_ready(launched: dict[str, tuple[Service, int, float]], cfg: config.Config, echo: Echo) -> dict[str, float]:
    """Poll every launched service until it answers, its process exits, or its timeout passes."""
    times: dict[str, float] = {}
    failures: list[str] = []
    pending = dict(launched)
    while pending:
        for name, (svc, pid, started) in list(pending.items()):
            if svc.ready(cfg):
                times[name] = time.monotonic() - started
                echo(f"{name}: up on port {svc.port(cfg)} (pid {pid}) in {times[name]:.1f}s")
                del pending[name]
            elif not _alive(pid):
                proc = _children.get(name)
                code = proc.poll() if proc else None
                failures.append(_failure(svc, cfg, f"exited during startup (exit code {code})"))
                _pid_file(cfg, name).unlink(missing_ok=True)
                del pending[name]
            elif time.monotonic() - started > cfg.timeout:
                failures.append(_failure(svc, cfg, f"did not come up within {cfg.timeout:.0f}s"))
                del pending[name]
        if pending:
            time.sleep(0.1)
    if failures:
        raise StackError("\n".join(failures))
    return times


def _needs_start(svc: Service, cfg: config.Config, echo: Echo, launched: dict[str, tuple[Service, int, float]]) -> bool:
    current = service_status(svc, cfg)
    if current.state == "absent":
        echo(f"{svc.name}: skipped ({current.note})")
    elif current.state == "up":
        echo(f"{svc.name}: already running on port {current.port} (pid {current.pid})")
    elif current.state == "external":
        if not svc.ready(cfg):
            raise StackError(
                f"{svc.name}: port {current.port} is in use by a process this stack did not start; "
                f"stop it or set LEADS_STACK_{svc.name.upper()}_PORT"
            )
        echo(f"{svc.name}: already served on port {current.port} by a process not started here")
    elif current.state == "starting":
        assert current.pid is not None
        launched[svc.name] = (svc, current.pid, time.monotonic())
    else:
        return True
    return False


def up(names: Iterable[str] | None = None, echo: Echo = print) -> dict[str, float]:
    """Start the named services (default: all that exist here); leave running ones alone.

    Returns the startup time in seconds of each service started by this call.
    """
    cfg = config.load()
    with _locked(cfg):
        launched: dict[str, tuple[Service, int, float]] = {}
        to_start = [svc for svc in _select(names) if _needs_start(svc, cfg, echo, launched)]
        for svc in to_start:
            began = time.monotonic()
            svc.prepare(cfg, echo)
            if time.monotonic() - began > 1:
                echo(f"{svc.name}: prepared in {time.monotonic() - began:.1f}s")
        # A long first preparation (a build) leaves time for another checkout's stack to take a port.
        to_start = [svc for svc in to_start if _needs_start(svc, cfg, echo, launched)]
        for svc in to_start:
            launched[svc.name] = (svc, _spawn(svc, cfg).pid, time.monotonic())
        return _wait_ready(launched, cfg, echo)


def _stop(svc: Service, cfg: config.Config, echo: Echo, grace: float = 30.0) -> None:
    pid = _pid(cfg, svc.name)
    if pid is None:
        _pid_file(cfg, svc.name).unlink(missing_ok=True)
        if probes.port_open(svc.port(cfg)):
            echo(f"{svc.name}: not started by this stack (port {svc.port(cfg)} is served by another process)")
        else:
            echo(f"{svc.name}: not running")
        return
    began = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)  # its own session: the server and any helper it forked
    how = "SIGTERM"
    while _alive(pid) and time.monotonic() - began < grace:
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        how = "SIGKILL"
        while _alive(pid) and time.monotonic() - began < grace + 10:
            time.sleep(0.1)
    proc = _children.pop(svc.name, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # leftovers of the group, if any
    _pid_file(cfg, svc.name).unlink(missing_ok=True)
    echo(f"{svc.name}: stopped (pid {pid}, {how}, {time.monotonic() - began:.1f}s)")


def down(names: Iterable[str] | None = None, echo: Echo = print) -> None:
    cfg = config.load()
    with _locked(cfg):
        for svc in reversed(_select(names)):
            _stop(svc, cfg, echo)


def stop_service(name: str, echo: Echo = print) -> None:
    down([name], echo)


def start_service(name: str, echo: Echo = print) -> dict[str, float]:
    return up([name], echo)


def restart_service(name: str, echo: Echo = print) -> dict[str, float]:
    stop_service(name, echo)
    return start_service(name, echo)


def ensure(names: Iterable[str] | None = None, echo: Echo = print) -> config.Config:
    """Start whatever of ``names`` is not up yet (quietly when all are up); returns the stack's config."""
    wanted = _select(names)
    if not all(current.up or current.state == "absent" for current in status(s.name for s in wanted)):
        up([svc.name for svc in wanted], echo)
    return config.load()
