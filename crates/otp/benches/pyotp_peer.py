#!/usr/bin/env python3
"""pyotp's peer of the `verify_wrong_window1` benchmark in verify.rs.

Times ``TOTP.verify(wrong_code, for_time=T, valid_window=1)`` for the same
secret (20 bytes 0x00..0x13), SHA-1, 6 digits, 30 s, the same T, and the same
wrong code (the first of 000000, 000001, ... that no step in the window
accepts). Like criterion, it runs many iterations per sample and reports the
median of several samples, in ns per iteration.

Prints one line:  pyotp_verify_wrong_window1 <median ns/iter> ns/iter (...)
"""

import argparse
import base64
import hashlib
import statistics
import sys
import timeit

try:
    import pyotp
except ImportError:
    sys.exit("pyotp is not installed (pip install pyotp, or apt-get install python3-pyotp)")

T = 1_700_000_000
SECRET = base64.b32encode(bytes(range(20))).decode().rstrip("=")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="samples (default 7)")
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per sample (default 0.5)")
    args = ap.parse_args()

    totp = pyotp.TOTP(SECRET, digits=6, digest=hashlib.sha1, interval=30)
    wrong = next(
        code for code in (f"{n:06}" for n in range(1_000_000)) if not totp.verify(code, for_time=T, valid_window=1)
    )

    def run() -> None:
        totp.verify(wrong, for_time=T, valid_window=1)

    timer = timeit.Timer(run)
    # Iterations per sample: enough for --min-time seconds (timeit's autorange
    # gives at least 0.2 s; scale it up).
    number, took = timer.autorange()
    number = max(number, int(number * args.min_time / max(took, 1e-9)))
    samples = [t / number * 1e9 for t in timer.repeat(repeat=args.repeats, number=number)]
    print(
        f"pyotp_verify_wrong_window1 {statistics.median(samples):.1f} ns/iter "
        f"(median of {args.repeats} x {number} iterations; min {min(samples):.1f}, max {max(samples):.1f}; "
        f"wrong code {wrong}, pyotp on Python {sys.version.split()[0]})"
    )


if __name__ == "__main__":
    main()
