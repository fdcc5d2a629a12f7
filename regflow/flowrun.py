"""The command the worker runs for each flow run: hand the run to the prewarmed
launcher (regflow/prewarmed.py) and stand in for it until it ends.

The worker watches this process: its exit code is the run's, and the SIGTERM it
sends to cancel a run is passed on. Started as `python -I -S flowrun.py`, so it must
import nothing beyond the standard library (it starts in ~20 ms). Without a
launcher it becomes the stock `python -m prefect.engine`.
"""

import json
import os
import signal
import socket
import struct
import sys

SOCKET_ENV = "REGFLOW_LAUNCHER_SOCKET"


def _engine() -> None:
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *sys.argv[1:]])


def main() -> int:
    path = os.environ.get(SOCKET_ENV)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path or "")
    except OSError:
        _engine()
    request = json.dumps({"env": dict(os.environ), "cwd": os.getcwd(), "argv": sys.argv[1:]}).encode()
    socket.send_fds(conn, [struct.pack("!I", len(request)) + request], [0, 1, 2])
    reader = conn.makefile("r")
    first = reader.readline().split()
    if first[:1] != ["pid"]:  # the launcher could not fork: run it here instead
        conn.close()
        _engine()
    pid = int(first[1])

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    parts = reader.readline().split()  # signals forwarded meanwhile (PEP 475 resumes the read)
    # No exit line: the launcher died with the run in flight; the worker marks it crashed.
    return int(parts[1]) if parts[:1] == ["exit"] else 1


if __name__ == "__main__":
    sys.exit(main())
