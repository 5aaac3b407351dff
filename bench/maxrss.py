"""Peak memory of a command: `python -m bench.maxrss OUT_FILE COMMAND...`.

Runs COMMAND as a child of this small process and writes its exit code and peak resident
set size (KiB, from `wait4`) to OUT_FILE as JSON. Measuring from the benchmark process
itself would be wrong: Linux carries a process's peak RSS across `exec`, and Python starts
subprocesses with vfork, so a child would report the benchmark's own peak as its own.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    out, command = sys.argv[1], sys.argv[2:]
    pid = os.fork()
    if pid == 0:  # the child: this process is small, so is what exec inherits from it
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    with open(out, "w") as file:
        json.dump({"exit": code, "maxrss_kib": usage.ru_maxrss}, file)
    return code


if __name__ == "__main__":
    sys.exit(main())
