#!/usr/bin/env bash
# Times our Totp::verify (SHA-1, 6 digits, window 1, wrong code: 3 HMACs)
# and pyotp's TOTP.verify on the same input, in one run, and prints both
# figures and the ratio pyotp / ours. Exits 1 if we are less than TARGET
# times faster.
#
#   crates/otp/benches/compare.sh          (from anywhere in the workspace)
#   TARGET=30 crates/otp/benches/compare.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/../../.."   # the workspace root
target="${TARGET:-25}"
bench=verify_wrong_window1

command -v python3 >/dev/null || { echo "compare.sh: python3 is required" >&2; exit 2; }
python3 -c 'import pyotp' 2>/dev/null || { echo "compare.sh: pyotp is required (pip install pyotp)" >&2; exit 2; }

started="$(date +%s)"
echo "== cargo bench -p otp --bench verify -- $bench"
cargo bench -p otp --bench verify -- "$bench"

target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
estimates="$target_dir/criterion/$bench/new/estimates.json"
ours="$(python3 - "$estimates" "$started" <<'PY'
import json, os, sys
path, started = sys.argv[1], int(sys.argv[2])
if not os.path.exists(path) or os.path.getmtime(path) < started - 1:
    sys.exit(f"compare.sh: no fresh criterion estimate at {path}")
with open(path) as f:
    print(json.load(f)["median"]["point_estimate"])
PY
)"

echo
echo "== python3 crates/otp/benches/pyotp_peer.py"
peer="$(python3 "$here/pyotp_peer.py")"
echo "$peer"
theirs="$(awk '{print $2}' <<<"$peer")"

echo
python3 - "$ours" "$theirs" "$target" <<'PY'
import sys
ours, theirs, target = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
ratio = theirs / ours
print(f"otp   Totp::verify (wrong code, window 1): {ours:10.1f} ns/iter (criterion median)")
print(f"pyotp TOTP.verify  (wrong code, window 1): {theirs:10.1f} ns/iter (timeit median)")
print(f"ratio pyotp / ours: {ratio:.1f}x (target: at least {target:g}x) -> {'OK' if ratio >= target else 'BELOW TARGET'}")
sys.exit(0 if ratio >= target else 1)
PY
