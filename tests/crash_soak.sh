#!/bin/sh
# crash_soak.sh - the crash test of tests/integration/test_crash.py, for
# hours rather than seconds: kill -9 at random moments during acked
# publishing and acking, ROUNDS times per batch, BATCHES batches, each with
# a new random seed (printed, so a failure can be replayed with
# PIGEON_CRASH_SEED).  docs/durability.md describes it.
#
#   tests/crash_soak.sh [BUILD_DIR] [ROUNDS] [BATCHES]
#
# defaults: build, 200 rounds, 10 batches (about 20 minutes on 2 cores).
# A build with -Db_sanitize=address,undefined checks memory too.
set -eu
build=${1:-build}
rounds=${2:-200}
batches=${3:-10}
here=$(cd "$(dirname "$0")" && pwd)
pigeond=$(cd "$build" && pwd)/src/pigeond/pigeond
[ -x "$pigeond" ] || { echo "crash_soak.sh: no pigeond at $pigeond (build it first)" >&2; exit 2; }
i=1
while [ "$i" -le "$batches" ]; do
    echo "crash_soak.sh: batch $i of $batches, $rounds rounds"
    PIGEOND=$pigeond PIGEON_CRASH_ROUNDS=$rounds /usr/bin/python3 "$here/integration/test_crash.py"
    i=$((i + 1))
done
echo "crash_soak.sh: $batches batches of $rounds rounds passed"
