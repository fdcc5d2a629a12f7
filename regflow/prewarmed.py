"""A worker whose flow runs start from a prewarmed process instead of a new Python.

A stock process worker starts `python -m prefect.engine` for every flow run, and on
two cores each start costs 2-4 s of CPU, mostly importing Prefect and our flows
(issue 7: a burst of 100 incidents took 276 s to reach its first human waits).
Here the worker is forked at start: the parent becomes the Prefect worker, the child
imports once everything a flow run imports and then waits on a Unix socket. The
work pool's command (regflow/flowrun.py) hands each run to it; it forks a child that
runs exactly what `python -m prefect.engine` runs, with the run's environment,
working directory and standard streams.

The worker still owns the run: it sees one process per run (flowrun.py), whose
exit code is the run's and whose SIGTERM reaches the run. The launcher exits with
its worker; if it is gone, flowrun.py runs the engine itself.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import warnings
from pathlib import Path

from regflow.flowrun import SOCKET_ENV
from regflow.settings import get_settings

FLOWRUN = Path(__file__).with_name("flowrun.py")
# What a run imports before its first human wait, measured (sys.modules in a run
# against the launcher's). prefect.engine itself is left out: the child runs it as
# __main__, as `python -m` would.
PREIMPORT = ("prefect._internal.control_listener", "prefect.flow_engine", "prefect.task_engine",
             "prefect.deployments.steps", "prefect.utilities.visualization", "anyio._backends._asyncio",
             "flows.emergency", "flows.enforcement", "tasks.status", "storage.heartbeats", "regflow.runs",
             "smtplib", "email.mime.multipart", "email.mime.text", "email.mime.application")


def _warm() -> None:
    """Everything a run would otherwise import or build anew each time (~2 s of CPU)."""
    import importlib

    import apprise.plugins
    import pendulum
    from sqlalchemy.engine import make_url
    from sqlalchemy.orm import configure_mappers

    for module in PREIMPORT:
        importlib.import_module(module)
    apprise.plugins.N_MGR.load_modules()  # apprise imports its ~100 plugins on first use: ~0.7 s
    make_url(get_settings().db_url).get_dialect()  # the dialect, without connecting
    pendulum.datetime(2026, 1, 1).format("MMMM")  # loads the locale
    configure_mappers()  # the ORM configures itself on its first query: ~0.2 s
    _warm_rules()
    _warm_channels()


def _warm_rules() -> None:
    """The plans and the people, parsed here once (cached by content or mtime)."""
    from rules.people import load_people
    from rules.plans import load_plan_file

    settings = get_settings()
    try:
        for path in sorted(settings.plans_dir.glob("*.yaml")):
            load_plan_file(path)
        load_people(settings.people_file)
    except Exception as exc:  # a bad file is each run's to report
        print(f"launcher: rules not preloaded ({type(exc).__name__})", flush=True)


def _warm_channels() -> None:
    """Parse the apprise config once here (~0.8 s of CPU a run otherwise); a run
    re-reads it only if the file has changed since. Not when it names a Prefect
    secret: reading one would start the client's threads in the launcher."""
    from tasks.notify import load_channels, names_prefect_secrets

    path = get_settings().apprise_config_path
    try:
        if names_prefect_secrets(path):
            return
        load_channels(path)
    except Exception as exc:  # a bad file is each run's to report, as it would be without the launcher
        print(f"launcher: channels not preloaded ({type(exc).__name__})", flush=True)


def flow_run_command() -> list[str]:
    """What the work pool runs per flow run (stdlib only, so no site-packages)."""
    return [sys.executable, "-I", "-S", str(FLOWRUN)]


def worker(socket_path: Path, command: list[str]) -> None:
    """Fork the launcher, then become `command` (the Prefect worker) in this process,
    so whoever started the worker holds its PID and the launcher dies with it."""
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    ready_r, ready_w = os.pipe()
    if os.fork() == 0:
        os.close(ready_r)
        code = serve(socket_path, parent=os.getppid(), ready=ready_w)
        sys.exit(code)
    os.close(ready_w)
    os.read(ready_r, 1)  # listening (or failed: flowrun.py then runs the engine itself)
    os.close(ready_r)
    os.environ[SOCKET_ENV] = str(socket_path)
    os.execvp(command[0], command)


def serve(socket_path: Path, *, parent: int, ready: int) -> int:
    """Import, listen, and fork a flow run per request. Returns only in a forked
    child, with that flow run's exit code, or when the worker is gone."""
    _warm()
    if threading.active_count() > 1:  # forking a threaded process can deadlock its children
        print(f"launcher: {threading.active_count()} threads after imports; flow runs start cold", flush=True)
        return 0
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(socket_path))
    except OSError as exc:  # e.g. a path over the 107 bytes a Unix socket may have
        print(f"launcher: cannot listen on {socket_path} ({exc.strerror}); flow runs start cold", flush=True)
        return 0
    listener.listen(64)
    os.write(ready, b"1")
    os.close(ready)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_r, selectors.EVENT_READ, "child")
    clients: dict[int, tuple[socket.socket, str]] = {}  # run pid -> (its flowrun.py connection, flow run id)
    print(f"launcher: ready on {socket_path} (pid {os.getpid()})", flush=True)
    forked = False
    try:
        while os.getppid() == parent:
            for key, _ in selector.select(timeout=1.0):
                if key.data == "accept":
                    try:
                        conn = listener.accept()[0]
                    except OSError as exc:  # e.g. out of descriptors: that stand-in runs the engine itself
                        print(f"launcher: accept failed ({exc.strerror})", flush=True)
                        continue
                    code = _fork_run(conn, selector, listener, clients)
                    if code is not None:  # this is the forked run, and it has ended
                        forked = True
                        return code
                elif key.data == "child":
                    os.read(wake_r, 512)
                else:  # flowrun.py closed before its run ended: it was killed, so is the run
                    _lost(key.data, clients, selector)
            _reap(clients, selector)
        return 0
    finally:
        if not forked:
            socket_path.unlink(missing_ok=True)


def _fork_run(conn: socket.socket, selector, listener, clients) -> int | None:
    """Fork a flow run for this request; in the child, run it and return its exit code."""
    fds: list[int] = []
    try:
        conn.settimeout(10)
        data, fds, _, _ = socket.recv_fds(conn, 65536, 3)
        data = _fill(conn, data, 4)
        end = 4 + struct.unpack("!I", data[:4])[0]  # a length, then that much JSON
        request = json.loads(_fill(conn, data, end)[4:end])
        if len(fds) != 3:
            raise ConnectionError(f"expected 3 descriptors, got {len(fds)}")
    except (OSError, ValueError) as exc:
        print(f"launcher: bad request ({exc}); the caller runs the engine itself", flush=True)
        for fd in fds:
            os.close(fd)
        conn.close()
        return None
    pid = os.fork()
    if pid == 0:
        selector.close()
        listener.close()
        for other, _ in clients.values():
            other.close()
        conn.close()
        return _run(request, fds)
    for fd in fds:
        os.close(fd)
    clients[pid] = (conn, request["env"].get("PREFECT__FLOW_RUN_ID", "?"))
    try:
        conn.settimeout(None)
        conn.sendall(f"pid {pid}\n".encode())
        selector.register(conn, selectors.EVENT_READ, pid)
    except OSError:  # the stand-in is gone already: so is its run (reaped as usual)
        os.kill(pid, signal.SIGKILL)
    return None


def _fill(conn: socket.socket, data: bytes, size: int) -> bytes:
    """`data` read on from `conn` until it holds at least `size` bytes."""
    while len(data) < size:
        more = conn.recv(65536)
        if not more:
            raise ConnectionError("request cut short")
        data += more
    return data


def _run(request: dict, fds: list[int]) -> int:
    """In the forked child: become the run's process, then run the engine's main."""
    import random
    import runpy

    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["prefect.engine", *request["argv"]]
    random.seed()
    import prefect.context

    prefect.context.refresh_global_settings_context()  # the run's env, not the launcher's
    get_settings.cache_clear()
    try:
        with warnings.catch_warnings():  # runpy warns that prefect.engine was imported (by prefect itself)
            warnings.simplefilter("ignore", RuntimeWarning)
            runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _reap(clients: dict[int, tuple[socket.socket, str]], selector) -> None:
    """Tell each finished run's flowrun.py its exit code."""
    while clients:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        conn, run = clients.pop(pid, (None, "?"))
        print(f"launcher: flow run {run} (pid {pid}) exited {code} after {usage.ru_utime + usage.ru_stime:.2f} s"
              " of CPU", flush=True)
        if conn is not None:
            _forget(conn, selector)
            try:
                conn.sendall(f"exit {code}\n".encode())
            except OSError:
                pass
            conn.close()


def _lost(pid: int, clients: dict[int, tuple[socket.socket, str]], selector) -> None:
    conn = clients[pid][0]
    try:
        if conn.recv(1):  # flowrun.py never writes; anything but EOF is ignored
            return
    except OSError:
        pass
    _forget(conn, selector)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _forget(conn: socket.socket, selector) -> None:
    try:
        selector.unregister(conn)
    except (KeyError, ValueError):
        pass
