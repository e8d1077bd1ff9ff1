"""Types lines into a program on a pseudo-terminal, each after its prompt.

usage: drive.py PROMPT PROGRAM [ARGS...]   (the lines on standard input)

Waits for PROMPT (after rustyline's bracketed-paste switch) before each line, then types Ctrl-D and waits for the
program's exit;
exits 1 with what was seen when the program stops or 30 s pass without
the expected output. Prints what the program wrote to the terminal.
"""

import os
import pty
import select
import sys
import time

LIMIT_S = 30.0
# What the program writes when it starts reading a line (bracketed paste on;
# TERM=xterm).
READING = b"\x1b[?2004h"


def main() -> int:
    prompt = sys.argv[1].encode()
    argv = sys.argv[2:]
    lines = sys.stdin.read().splitlines()
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    seen = b""

    def read_until(marker: bytes, start: int) -> int:
        nonlocal seen
        end = time.monotonic() + LIMIT_S
        while marker not in seen[start:]:
            left = end - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                sys.stderr.write(f"no {marker!r} within {LIMIT_S} s: {seen!r}\n")
                sys.exit(1)
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                sys.stderr.write(f"the program ended before {marker!r}: {seen!r}\n")
                sys.exit(1)
            seen += data
        return seen.index(marker, start) + len(marker)

    def next_prompt(start: int) -> int:
        # rustyline turns bracketed paste on as it starts reading a line
        # (so output such as "<null> " is never taken for a prompt).
        return read_until(prompt, read_until(READING, start))

    at = next_prompt(0)
    for line in lines:
        os.write(fd, line.encode() + b"\r")
        # The line is accepted (a new line), then the next prompt comes.
        at = next_prompt(read_until(b"\n", at))
    # End of input (Ctrl-D on an empty line) ends the shell.
    os.write(fd, b"\x04")
    end = time.monotonic() + LIMIT_S
    status = None
    while status is None:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                pass
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = raw
        elif time.monotonic() > end:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            sys.stderr.write(f"the program did not end at end of input: {seen!r}\n")
            return 1
    sys.stdout.write(seen.decode("utf-8", "replace"))
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
