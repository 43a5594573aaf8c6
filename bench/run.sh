#!/usr/bin/env bash
# tarn's servers beside tokio's and smol's, measured in one run: HTTP with
# wrk, syscalls per request under strace, echo with bench's echo_load, and
# the memory of idle connections. Prints one table of medians with the
# ratios to tokio, then one of min–max. See bench/README.md.
#
#   bench/run.sh                 # 3 rounds of 5 s runs (about 4 minutes)
#   bench/run.sh --rounds 5 --secs 10
#   bench/run.sh --quick         # 1 round of 2 s runs (the smoke run)
#
# Every server is single-threaded and pinned to CPU 0; every load generator
# is pinned to CPU 1; contenders are interleaved tarn, tokio, smol, tarn, ...
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
secs=5
idle_conns=10000
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) rounds=1; secs=2; shift ;;
        --rounds) rounds="$2"; shift 2 ;;
        --secs) secs="$2"; shift 2 ;;
        --idle) idle_conns="$2"; shift 2 ;;
        *) echo "usage: bench/run.sh [--quick] [--rounds N] [--secs S] [--idle CONNS]" >&2; exit 2 ;;
    esac
done

log() { printf '== %s\n' "$*" >&2; }

# --- tools ---------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v strace >/dev/null || missing+=(strace)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

log "building (release)"
cargo build --release --quiet --example http_hello --example echo
cargo build --release --quiet --manifest-path bench/Cargo.toml \
    --bin tokio_http --bin smol_http --bin tokio_echo --bin smol_echo \
    --bin echo_load --bin report
examples=target/release/examples
bins=bench/target/release

# The idle-connection test needs an fd per connection in the server and in
# the client.
ulimit -n "$(ulimit -Hn)"

# --- bookkeeping ---------------------------------------------------------
work=$(mktemp -d)
results="$work/results.tsv"
: >"$results"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# record BENCHMARK CONTENDER VALUE
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; }

clk_tck=$(getconf CLK_TCK)

# The server's user + system CPU time so far, in clock ticks (all threads).
cpu_ticks() {
    # Fields after "pid (comm) ": state is 1, utime 12, stime 13.
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# Microseconds of CPU per unit of work: cpu_us TICKS0 TICKS1 UNITS
cpu_us() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$clk_tck" 'BEGIN { printf "%.4f", (b - a) * 1e6 / hz / n }'; }

# binary CONTENDER KIND: the server binary (KIND is http or echo).
binary() {
    case "$1/$2" in
        tarn/http) echo "$examples/http_hello" ;;
        tarn/echo) echo "$examples/echo" ;;
        */*) echo "$bins/$1_$2" ;;
    esac
}

# start_server CONTENDER KIND PORT: starts it on CPU 0, sets $server, waits
# until it listens.
start_server() {
    local out="$work/server.out"
    taskset -c 0 "$(binary "$1" "$2")" "127.0.0.1:$3" >"$out" 2>&1 &
    server=$!
    pids+=("$server")
    local i
    for i in $(seq 200); do
        grep -q listening "$out" && return 0
        kill -0 "$server" 2>/dev/null || break
        sleep 0.05
    done
    echo "$1 $2 server did not start:" >&2
    cat "$out" >&2
    exit 1
}

stop_server() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
}

# wrk_run PORT CONNS SECS OUT: one wrk run on CPU 1; fails on bad responses.
wrk_run() {
    taskset -c 1 wrk -t1 -c"$2" -d"$3"s --latency "http://127.0.0.1:$1/" >"$4"
    if grep -q -e 'Non-2xx' "$4"; then
        echo "wrk saw bad responses:" >&2
        cat "$4" >&2
        exit 1
    fi
    grep -q 'Socket errors' "$4" && grep 'Socket errors' "$4" | sed 's/^/warning: wrk: /' >&2
    return 0
}
wrk_requests() { awk '/requests in/ { print $1 }' "$1"; }
wrk_rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
# The 99th percentile latency in milliseconds.
wrk_p99_ms() {
    awk '$1 == "99%" {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : 0
        printf "%.3f", v * f }' "$1"
}

contenders=(tarn tokio smol)
port_of() { # port_of ROUND INDEX BASE: a fresh port per run, past TIME_WAIT
    echo $(($3 + $1 * 10 + $2))
}

# --- HTTP ----------------------------------------------------------------
for round in $(seq "$rounds"); do
    for i in 0 1 2; do
        who=${contenders[$i]}
        port=$(port_of "$round" "$i" 18000)
        log "http round $round/$rounds: $who"
        start_server "$who" http "$port"
        for conns in 64 512; do
            out="$work/wrk.out"
            t0=$(cpu_ticks "$server")
            wrk_run "$port" "$conns" "$secs" "$out"
            t1=$(cpu_ticks "$server")
            requests=$(wrk_requests "$out")
            record "http -c$conns req/s" "$who" "$(wrk_rps "$out")"
            record "http -c$conns server CPU µs/req" "$who" "$(cpu_us "$t0" "$t1" "$requests")"
            record "http -c$conns p99 latency ms" "$who" "$(wrk_p99_ms "$out")"
        done
        stop_server
    done
done

# --- syscalls per request ------------------------------------------------
# strace attaches to the running server (so start-up is not counted) for
# one wrk -c64 run; counts divided by the requests wrk completed.
for round in $(seq "$rounds"); do
    for i in 0 1 2; do
        who=${contenders[$i]}
        port=$(port_of "$round" "$i" 18500)
        log "syscalls round $round/$rounds: $who"
        start_server "$who" http "$port"
        trace="$work/strace.out"
        strace -f -c -o "$trace" -p "$server" 2>/dev/null &
        tracer=$!
        pids+=("$tracer")
        sleep 0.5
        wrk_run "$port" 64 "$secs" "$work/wrk.out"
        requests=$(wrk_requests "$work/wrk.out")
        kill -INT "$tracer"
        wait "$tracer" 2>/dev/null || true
        stop_server
        # strace -c: "% time, seconds, usecs/call, calls, [errors,] syscall".
        awk -v n="$requests" -v who="$who" '
            $NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {
                name = $NF; calls = $4; errors = (NF == 6) ? $5 : 0
                if (name ~ /^epoll_(wait|pwait|pwait2)$/) ew += calls
                else if (name == "epoll_ctl") ec += calls
                else if (name ~ /^(read|recvfrom|recvmsg|readv)$/) { rd += calls; again += errors }
                else if (name ~ /^(write|sendto|sendmsg|writev)$/) wr += calls
                all += calls
            }
            END {
                printf "syscalls/req epoll_wait\t%s\t%.4f\n", who, ew / n
                printf "syscalls/req epoll_ctl\t%s\t%.4f\n", who, ec / n
                printf "syscalls/req read\t%s\t%.4f\n", who, rd / n
                printf "syscalls/req read EAGAIN\t%s\t%.4f\n", who, again / n
                printf "syscalls/req write\t%s\t%.4f\n", who, wr / n
                printf "syscalls/req all\t%s\t%.4f\n", who, all / n
            }' "$trace" >>"$results"
    done
done

# --- echo ----------------------------------------------------------------
for round in $(seq "$rounds"); do
    for i in 0 1 2; do
        who=${contenders[$i]}
        port=$(port_of "$round" "$i" 19000)
        log "echo round $round/$rounds: $who"
        start_server "$who" echo "$port"
        for size in 64 16384; do
            label=$([ "$size" = 64 ] && echo "64 B" || echo "16 KiB")
            out="$work/echo.out"
            t0=$(cpu_ticks "$server")
            taskset -c 1 timeout $((secs + 30)) "$bins/echo_load" "127.0.0.1:$port" \
                --conns 64 --size "$size" --secs "$secs" >"$out"
            t1=$(cpu_ticks "$server")
            msgs=$(awk '{ print $2 }' "$out")
            record "echo $label x64 msgs/s" "$who" "$(awk '{ print $6 }' "$out")"
            record "echo $label x64 server CPU µs/msg" "$who" "$(cpu_us "$t0" "$t1" "$msgs")"
        done
        stop_server
    done
done

# --- idle connections ----------------------------------------------------
# RSS growth of the echo server while it holds $idle_conns idle
# connections, each with its task waiting in read.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
for round in $(seq "$rounds"); do
    for i in 0 1 2; do
        who=${contenders[$i]}
        port=$(port_of "$round" "$i" 19500)
        log "idle round $round/$rounds: $who, $idle_conns connections"
        start_server "$who" echo "$port"
        rss0=$(rss_kb "$server")
        fds0=$(fds "$server")
        out="$work/idle.out"
        taskset -c 1 "$bins/echo_load" "127.0.0.1:$port" --idle "$idle_conns" >"$out" &
        client=$!
        pids+=("$client")
        # Until every connection is accepted and its task is parked in read.
        for _ in $(seq 600); do
            grep -q connected "$out" && [ "$(fds "$server")" -ge $((fds0 + idle_conns)) ] && break
            kill -0 "$client" 2>/dev/null || { echo "idle client failed" >&2; exit 1; }
            sleep 0.05
        done
        sleep 0.3
        rss1=$(rss_kb "$server")
        record "idle RSS B/conn" "$who" "$(awk -v a="$rss0" -v b="$rss1" -v n="$idle_conns" 'BEGIN { printf "%.1f", (b - a) * 1024 / n }')"
        kill "$client"
        wait "$client" 2>/dev/null || true
        stop_server
    done
done

echo
echo "tarn vs tokio vs smol: $rounds round(s) of ${secs} s, $(nproc) CPUs, $(uname -r)"
echo "servers on CPU 0, load on CPU 1; medians, ratios to tokio (lower is better for CPU, latency, syscalls, RSS)"
echo
"$bins/report" "$results"
