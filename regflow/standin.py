"""Stand-ins: hand work to the prewarmed launcher (regflow/prewarmed.py) and stand
in for it until it ends, so the caller sees an ordinary process.

Two callers. The worker runs `python -I -S standin.py` for each flow run: its exit
code is the run's, and the SIGTERM it sends to cancel a run is passed on; without a
launcher it becomes the stock `python -m prefect.engine`. And `regflow` itself
(`command_line`, the console script) hands a duty officer's command to a launcher
of the same REGFLOW_HOME: run there, a trigger's dispatch order leaves ~0.1 s after
Enter instead of after ~1 s of imports; without a launcher it runs here.

Both start before anything else is imported, so this module imports nothing beyond
the standard library (as a script it starts in ~20 ms).
"""

import glob
import json
import os
import signal
import socket
import struct
import sys

SOCKET_ENV = "REGFLOW_LAUNCHER_SOCKET"
# The default REGFLOW_HOME, as kernel/settings.py has it (a script started with -I -S
# cannot import the project; tests/test_layers.py checks the two agree).
DEFAULT_API = "http://127.0.0.1:4200/api"  # kernel.settings.DEFAULT_PREFECT_API
DEFAULT_HOME = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".regflow")
# Top-level commands a launcher runs for `regflow` (none that starts a service).
HANDED_OVER = frozenset({"incident", "case", "lead", "complaint", "sample", "signal", "risk", "recall", "publication",
                         "serious-list", "credit", "referral"})  # fmt: skip


def prefect_configured(cwd: str) -> bool:
    """Whether a file Prefect reads its settings from is there: a .env, prefect.toml or
    pyproject.toml of the working directory that mentions Prefect, or a profiles file.
    Reading them is Prefect's job (kernel.settings.use_prefect_api_url); this only spares
    the ~0.9 s of importing Prefect's settings where nothing could say otherwise."""
    home = os.environ.get("PREFECT_HOME") or os.path.join(os.path.expanduser("~"), ".prefect")
    profiles = os.environ.get("PREFECT_PROFILES_PATH") or os.path.join(home, "profiles.toml")
    if os.path.exists(os.path.expanduser(profiles)) or os.path.exists(os.path.join(cwd, "prefect.toml")):
        return True
    for name, mark in ((".env", "PREFECT_"), ("pyproject.toml", "tool.prefect")):
        try:
            with open(os.path.join(cwd, name), encoding="utf-8", errors="replace") as file:
                if mark in file.read():
                    return True
        except OSError:
            pass
    return False


def launcher_socket(pid: int | str) -> str:
    """Where a worker's launcher listens: $REGFLOW_HOME/run/launcher-PID.sock."""
    return os.path.join(os.environ.get("REGFLOW_HOME") or DEFAULT_HOME, "run", f"launcher-{pid}.sock")


def run_in_launcher(path: str, target: str, argv: list[str]) -> int | None:
    """Run `target` ("engine" or "cli") with `argv` in a process forked by the
    launcher at `path`, with this process's environment, directory and standard
    streams; its exit code, or None if no launcher took it."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        request = json.dumps({"target": target, "env": dict(os.environ), "cwd": os.getcwd(), "argv": argv}).encode()
        socket.send_fds(conn, [struct.pack("!I", len(request)) + request], [0, 1, 2])
        reader = conn.makefile("r")
        first = reader.readline().split()
    except OSError:
        conn.close()
        return None
    if first[:1] != ["pid"]:  # the launcher refused or could not fork
        conn.close()
        return None
    pid = int(first[1])

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    parts = reader.readline().split()  # signals forwarded meanwhile (PEP 475 resumes the read)
    # No exit line: the launcher died with the work in flight (a run: the worker marks it crashed).
    return int(parts[1]) if parts[:1] == ["exit"] else 1


def flow_run() -> int:
    """The worker's command for a flow run."""
    code = run_in_launcher(os.environ.get(SOCKET_ENV) or "", "engine", sys.argv[1:])
    if code is None:
        os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *sys.argv[1:]])
    return code


def command_line() -> None:
    """The `regflow` console script."""
    # Without an API address Prefect's client would start a throwaway server of its
    # own, which knows none of our runs: default to where `make run` serves it, unless
    # Prefect's own configuration may name one (regflow.cli then asks Prefect).
    if "PREFECT_API_URL" not in os.environ and not prefect_configured(os.getcwd()):
        os.environ["PREFECT_API_URL"] = DEFAULT_API
    argv = sys.argv[1:]
    if argv and argv[0] in HANDED_OVER:
        for path in sorted(
            glob.glob(os.path.join(glob.escape(os.path.dirname(launcher_socket(0))), "launcher-*.sock"))
        ):
            code = run_in_launcher(path, "cli", argv)
            if code is not None:
                sys.exit(128 - code if code < 0 else code)  # killed by a signal: as a shell reports it
    from regflow.cli import main

    sys.exit(main(argv))


if __name__ == "__main__":
    sys.exit(flow_run())
