#!/bin/bash
# stream_peers.sh - durable publishing and consuming: pigeond against Redis
# Streams and NATS JetStream, in one run, ROUNDS times each, interleaved.
#
#   tests/bench/stream_peers.sh [ROUNDS] [N]
#
# Each round, each target starts on a fresh directory on this machine's
# disk (under $TMPDIR, default /tmp) and is stopped after:
#
#   pigeond fsync=yes   streambench pub: N x 128 B, a window of 64 pub
#                       requests with {stream}; an answer means fdatasync'd
#   redis always        redis-benchmark -P 64 -c 1 XADD (128 B field),
#                       appendonly yes, appendfsync always: an answer means
#                       fdatasync'd
#   pigeond fsync=no    as above; an answer means written to the OS
#   nats js             jsbench pub -w 64 -a 1 (file storage): JetStream
#                       2.9 answers before any sync (it syncs every 2 min)
#   pigeond consume     streambench consume: N deliveries of a durable,
#                       each acked with an ack request (answered once the
#                       ack is on stable storage), max_pending 1000
#   nats consume        jsbench sub -b 1000: a pull consumer, each message
#                       acked (acks not synced)
#
# Needs redis-server and redis-benchmark, and for NATS nats-server and
# $JSBENCH, the path of a jsbench binary (the peer comparison harness kept
# with the project's planning notes; without it the NATS rows are skipped).
# Prints each figure as it comes and the medians at the end.
set -u
rounds=${1:-3}
n=${2:-500000}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-$root/build}
pigeond=$build/src/pigeond/pigeond
bench=$build/tests/streambench
tmp=$(mktemp -d "${TMPDIR:-/tmp}/stream-peers-XXXXXX")
port=17451
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
declare -A figures

note() { figures[$1]="${figures[$1]:-} $2"; printf '%-22s %10.0f msgs/s\n' "$1" "$2"; }

start_pigeond() { # FSYNC
    rm -rf "$tmp/p" && mkdir -p "$tmp/p"
    printf '[broker]\nlog_level = warning\n[listener main]\nbind = 127.0.0.1:%d\n[store]\ndir = %s\nfsync = %s\n[stream bench]\npatterns = bench.>\n' \
        "$port" "$tmp/p/store" "$1" > "$tmp/p/p.conf"
    "$pigeond" -c "$tmp/p/p.conf" --ports-file "$tmp/p/ports" 2> "$tmp/p/log" &
    ppid=$!
    for _ in $(seq 100); do [ -s "$tmp/p/ports" ] && return; sleep 0.05; done
    echo "pigeond did not start: $(cat "$tmp/p/log")" >&2; exit 1
}
stop_pigeond() { kill "$ppid"; wait "$ppid" 2>/dev/null; }

rate_of() { sed -n 's/.*: \([0-9]*\) msgs\/s.*/\1/p'; }

for r in $(seq "$rounds"); do
    echo "--- round $r of $rounds"
    start_pigeond yes
    note "pigeond fsync=yes" "$("$bench" pub -a 127.0.0.1:$port -n "$n" -w 64 -b 128 | rate_of)"
    note "pigeond consume" "$("$bench" consume -a 127.0.0.1:$port -n "$n" -x 1000 -k request | rate_of)"
    stop_pigeond

    rm -rf "$tmp/r" && mkdir -p "$tmp/r"
    redis-server --port $((port + 1)) --dir "$tmp/r" --appendonly yes --appendfsync always \
        --save "" --daemonize yes --logfile "$tmp/r/log" > /dev/null
    sleep 0.3
    v=$(head -c 128 /dev/zero | tr '\0' x)
    rps=$(redis-benchmark -p $((port + 1)) -P 64 -c 1 -n "$n" -q XADD s '*' f "$v" 2>/dev/null |
          tr '\r' '\n' | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
    note "redis always" "$rps"
    redis-cli -p $((port + 1)) shutdown nosave > /dev/null 2>&1

    start_pigeond no
    note "pigeond fsync=no" "$("$bench" pub -a 127.0.0.1:$port -n "$n" -w 64 -b 128 | rate_of)"
    stop_pigeond

    if [ -n "${JSBENCH:-}" ]; then
        rm -rf "$tmp/n" && mkdir -p "$tmp/n"
        nats-server -js -p $((port + 2)) -sd "$tmp/n" > "$tmp/n/log" 2>&1 &
        npid=$!
        sleep 1
        note "nats js" "$("$JSBENCH" pub -p $((port + 2)) -w 64 -n "$n" -s 128 -a 1 | sed -n 's/.*rate=\([0-9]*\).*/\1/p')"
        note "nats consume" "$("$JSBENCH" sub -p $((port + 2)) -n "$n" -b 1000 -s 128 -a 1 | sed -n 's/.*rate=\([0-9]*\).*/\1/p')"
        kill "$npid"; wait "$npid" 2>/dev/null
    fi
done

echo "--- medians of $rounds rounds, $n messages of 128 B"
for k in "pigeond fsync=yes" "redis always" "pigeond fsync=no" "nats js" "pigeond consume" "nats consume"; do
    [ -n "${figures[$k]:-}" ] || continue
    med=$(echo ${figures[$k]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    printf '%-22s %10.0f msgs/s   (%s )\n' "$k" "$med" "${figures[$k]}"
done
