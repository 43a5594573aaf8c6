#!/usr/bin/env bash
# tarn's servers beside tokio's and smol's, measured in one run: HTTP with
# wrk, syscalls per request under strace, echo with bench's echo_load (also
# tarn's sockets under tokio's executor, and tarn on its poll and select
# backends), syscalls per echo message, and the memory of idle connections.
# Prints one table of medians with the ratios to tokio (and, for tarn-only
# variant rows, to the tarn row they vary), then one of min–max. Every row
# is described in bench/README.md.
#
#   bench/run.sh                 # 3 rounds of 5 s runs (about 8 minutes)
#   bench/run.sh --rounds 5 --secs 10
#   bench/run.sh --quick         # 1 round of 2 s runs, about 60 s (the smoke run)
#
# Every server is single-threaded and pinned to CPU 0 (the foreign-executor
# server has two threads, tokio's and tarn's fallback reactor thread, and
# the whole process is pinned to CPU 0); every load generator is pinned to
# CPU 1; contenders are interleaved tarn, tokio, smol, tarn, ...
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
secs=5
# The length of the runs under strace (counts per request, not rates, are
# what they measure, so the quick run keeps them short).
strace_secs=
idle_conns=10000
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) rounds=1; secs=2; strace_secs=1; shift ;;
        --rounds) rounds="$2"; shift 2 ;;
        --secs) secs="$2"; shift 2 ;;
        --idle) idle_conns="$2"; shift 2 ;;
        *) echo "usage: bench/run.sh [--quick] [--rounds N] [--secs S] [--idle CONNS]" >&2; exit 2 ;;
    esac
done
strace_secs=${strace_secs:-$secs}

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
cargo build --release --quiet --example http_hello --example echo --example idle_echo
cargo build --release --quiet --manifest-path bench/Cargo.toml \
    --bin tokio_http --bin smol_http --bin tokio_echo --bin smol_echo \
    --bin foreign_echo --bin echo_load --bin report
examples=target/release/examples
bins=bench/target/release

# The idle-connection test needs an fd per connection in the server and in
# the client.
ulimit -n "$(ulimit -Hn)"

# --- bookkeeping ---------------------------------------------------------
work=$(mktemp -d)
results="$work/results.tsv"
: >"$results"
# Ends what is still running, newest first (a tracer before its tracee: a
# SIGTERM sent while strace lets go of a process can be lost), and kills
# what a SIGTERM did not end within 2 s. Only this shell's unreaped
# background jobs (`jobs -p`) are signalled, never a pid that has been
# reaped and may since belong to another process.
cleanup() {
    local i pid live
    mapfile -t live < <(jobs -p)
    for ((i = ${#live[@]} - 1; i >= 0; i--)); do
        kill "${live[$i]}" 2>/dev/null || true
    done
    for pid in "${live[@]}"; do
        for _ in $(seq 20); do
            case "$(ps -o stat= -p "$pid" 2>/dev/null)" in "" | Z*) break ;; esac
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# record BENCHMARK CONTENDER VALUE
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; }
# base BENCHMARK BASE: report divides BENCHMARK's tarn median by BASE's.
base() { printf '#base\t%s\t%s\n' "$1" "$2" >>"$results"; }

clk_tck=$(getconf CLK_TCK)

# The server's user + system CPU time so far, in clock ticks (all threads).
cpu_ticks() {
    # Fields after "pid (comm) ": state is 1, utime 12, stime 13.
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# Microseconds of CPU per unit of work: cpu_us TICKS0 TICKS1 UNITS
cpu_us() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$clk_tck" 'BEGIN { printf "%.4f", (b - a) * 1e6 / hz / n }'; }

# server_cmd CONTENDER KIND: sets $cmd to the server's command (KIND is
# http or echo). tarn's servers get their selector backend named, so a
# TARN_SELECTOR in the caller's environment cannot change what is measured.
server_cmd() {
    case "$1/$2" in
        tarn/http) cmd=(env TARN_SELECTOR=epoll "$examples/http_hello") ;;
        tarn/echo) cmd=(env TARN_SELECTOR=epoll "$examples/echo") ;;
        tarn/idle_echo) cmd=(env TARN_SELECTOR=epoll "$examples/idle_echo") ;;
        tarn-poll/echo) cmd=(env TARN_SELECTOR=poll "$examples/echo") ;;
        tarn-select/echo) cmd=(env TARN_SELECTOR=select "$examples/echo") ;;
        foreign/echo) cmd=(env TARN_SELECTOR=epoll "$bins/foreign_echo") ;;
        */*) cmd=("$bins/$1_$2") ;;
    esac
}

# start_server CONTENDER KIND PORT: starts it on CPU 0, sets $server, waits
# until it listens. (taskset and env exec the server: $server is its pid.)
start_server() {
    local out="$work/server.out" cmd
    server_cmd "$1" "$2"
    taskset -c 0 "${cmd[@]}" "127.0.0.1:$3" >"$out" 2>&1 &
    server=$!
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

# syscall_rows PREFIX CONTENDER UNITS TRACE: records the calls per unit of
# work from an `strace -c` summary: `epoll_wait` (epoll_wait, epoll_pwait,
# epoll_pwait2), `epoll_ctl`, `read` (read, recvfrom, recvmsg, readv), `read
# EAGAIN` (those that failed), `write` (write, sendto, sendmsg, writev),
# `futex` and `all`. A second contender name (for tarn-only variant rows)
# records only epoll_wait, epoll_ctl, futex and all, in the tarn column.
syscall_rows() {
    # strace -c: "% time, seconds, usecs/call, calls, [errors,] syscall".
    awk -v prefix="$1" -v who="$2" -v n="$3" '
        $NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {
            name = $NF; calls = $4; errors = (NF == 6) ? $5 : 0
            if (name ~ /^epoll_(wait|pwait|pwait2)$/) ew += calls
            else if (name == "epoll_ctl") ec += calls
            else if (name ~ /^(read|recvfrom|recvmsg|readv)$/) { rd += calls; again += errors }
            else if (name ~ /^(write|sendto|sendmsg|writev)$/) wr += calls
            else if (name == "futex") fx += calls
            all += calls
        }
        END {
            col = (who == "tarn" || who == "tokio" || who == "smol") ? who : "tarn"
            full = (col == who)
            printf "%s epoll_wait\t%s\t%.4f\n", prefix, col, ew / n
            printf "%s epoll_ctl\t%s\t%.4f\n", prefix, col, ec / n
            if (full) {
                printf "%s read\t%s\t%.4f\n", prefix, col, rd / n
                printf "%s read EAGAIN\t%s\t%.4f\n", prefix, col, again / n
                printf "%s write\t%s\t%.4f\n", prefix, col, wr / n
            }
            printf "%s futex\t%s\t%.4f\n", prefix, col, fx / n
            printf "%s all\t%s\t%.4f\n", prefix, col, all / n
        }' "$4" >>"$results"
}

# strace_attach PID OUT: counts the syscalls of every thread of PID into
# OUT until strace_detach; sets $tracer.
strace_attach() {
    strace -f -c -o "$2" -p "$1" 2>/dev/null &
    tracer=$!
    sleep 0.5
}
strace_detach() {
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
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
        strace_attach "$server" "$trace"
        wrk_run "$port" 64 "$strace_secs" "$work/wrk.out"
        requests=$(wrk_requests "$work/wrk.out")
        strace_detach
        stop_server
        syscall_rows "syscalls/req" "$who" "$requests" "$trace"
    done
done

# --- echo ----------------------------------------------------------------
# echo_run PORT SIZE CONNS SECS [TRACE]: one echo_load run on CPU 1 against
# $server; sets $msgs, $rate (msgs/s), $server_us (server CPU µs/msg),
# $server_pct and $client_pct (CPU use of each over the run). echo_load
# fails the run on any wrong byte. With TRACE, strace counts the server's
# syscalls into it from after the connections are set up until the load
# ends, before they close (echo_load --wait-usr1).
echo_run() {
    local out="$work/echo.out" t0 t1 client _
    t0=$(cpu_ticks "$server")
    if [ -z "${5:-}" ]; then
        taskset -c 1 timeout $(($4 + 30)) "$bins/echo_load" "127.0.0.1:$1" \
            --conns "$3" --size "$2" --secs "$4" >"$out"
    else
        # No `timeout` here: SIGUSR1 must reach echo_load itself (which
        # fails by itself after 10 s without a reply).
        taskset -c 1 "$bins/echo_load" "127.0.0.1:$1" \
            --conns "$3" --size "$2" --secs "$4" --wait-usr1 >"$out" &
        client=$!
        for _ in $(seq 200); do
            grep -q connected "$out" && break
            kill -0 "$client" 2>/dev/null || break
            sleep 0.05
        done
        sleep 0.2 # the server accepts and registers the connections
        strace_attach "$server" "$5"
        t0=$(cpu_ticks "$server")
        kill -USR1 "$client"
        # After the load echo_load prints its summary and keeps the
        # connections open until a second SIGUSR1: strace leaves first, so
        # the connections' teardown is not counted either.
        while ! grep -q '^msgs' "$out"; do
            kill -0 "$client" 2>/dev/null || { echo "echo_load failed" >&2; exit 1; }
            sleep 0.05
        done
        t1=$(cpu_ticks "$server")
        strace_detach
        kill -USR1 "$client"
        wait "$client" || { echo "echo_load failed" >&2; exit 1; }
        sed -i '/^connected/d' "$out"
    fi
    [ -n "${5:-}" ] || t1=$(cpu_ticks "$server")
    # "msgs N secs S msgs/s R bytes/s B cpu_secs C"
    read -r _ msgs _ elapsed _ rate _ _ _ client_cpu <"$out"
    server_us=$(cpu_us "$t0" "$t1" "$msgs")
    server_pct=$(awk -v a="$t0" -v b="$t1" -v s="$elapsed" -v hz="$clk_tck" 'BEGIN { printf "%.1f", (b - a) * 100 / hz / s }')
    client_pct=$(awk -v c="$client_cpu" -v s="$elapsed" 'BEGIN { printf "%.1f", c * 100 / s }')
}
echo_name() { # echo_name SIZE CONNS: "echo 64 B x64"
    echo "echo $([ "$1" = 16384 ] && echo "16 KiB" || echo "$1 B") x$2"
}

# The peers run every load; tarn's variants (tokio's executor over tarn's
# sockets, the poll and select backends) run the loads their targets name
# and are reported in the tarn column of rows of their own, with the ratio
# to tarn's own row (epoll, tarn's executor) as tarn/base.
echo_contenders=(tarn tokio smol foreign tarn-poll tarn-select)
for round in $(seq "$rounds"); do
    for i in "${!echo_contenders[@]}"; do
        who=${echo_contenders[$i]}
        port=$(port_of "$round" "$i" 19000)
        case "$who" in
            foreign | tarn-poll) loads="64:64" ;;
            tarn-select) loads="64:512" ;;
            *) loads="64:64 16384:64 64:512" ;;
        esac
        log "echo round $round/$rounds: $who ($loads, size:conns)"
        start_server "$who" echo "$port"
        for load in $loads; do
            size=${load%:*}
            conns=${load#*:}
            name=$(echo_name "$size" "$conns")
            echo_run "$port" "$size" "$conns" "$secs"
            case "$who" in
                tarn | tokio | smol)
                    record "$name msgs/s" "$who" "$rate"
                    record "$name server CPU µs/msg" "$who" "$server_us"
                    if [ "$load" = 64:64 ]; then
                        record "$name server CPU %" "$who" "$server_pct"
                        record "$name client CPU %" "$who" "$client_pct"
                    fi
                    ;;
                *)
                    case "$who" in
                        foreign) variant="$name foreign (tokio rt + tarn sockets)" ;;
                        *) variant="$name ${who#tarn-} backend" ;;
                    esac
                    record "$variant msgs/s" tarn "$rate"
                    record "$variant server CPU µs/msg" tarn "$server_us"
                    base "$variant msgs/s" "$name msgs/s"
                    base "$variant server CPU µs/msg" "$name server CPU µs/msg"
                    ;;
            esac
        done
        stop_server
    done
done

# --- syscalls per echo message --------------------------------------------
# As for HTTP, strace attached to the running server for one 64 B x64
# echo_load run, counts divided by the messages echoed; but attached once
# the connections are set up, so the counts are the steady state's (no
# accept, no registration). The foreign rows show whether tarn's sockets
# under tokio still cost no epoll_ctl.
sys_contenders=(tarn tokio smol foreign)
for round in $(seq "$rounds"); do
    for i in "${!sys_contenders[@]}"; do
        who=${sys_contenders[$i]}
        port=$(port_of "$round" "$i" 19300)
        log "echo syscalls round $round/$rounds: $who"
        start_server "$who" echo "$port"
        trace="$work/strace.out"
        echo_run "$port" 64 64 "$strace_secs" "$trace"
        stop_server
        if [ "$who" = foreign ]; then
            syscall_rows "echo foreign syscalls/msg" foreign "$msgs" "$trace"
            for call in epoll_wait epoll_ctl futex all; do
                base "echo foreign syscalls/msg $call" "echo syscalls/msg $call"
            done
        else
            syscall_rows "echo syscalls/msg" "$who" "$msgs" "$trace"
        fi
    done
done

# --- idle connections ----------------------------------------------------
# RSS growth of the echo server while it holds $idle_conns idle
# connections, each with its task waiting in read.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
# A fourth server each round: tarn's examples/idle_echo, whose idle
# connections hold no buffer (a tarn-only row, with the tarn echo row as
# its base).
idle_row="idle RSS B/conn"
for round in $(seq "$rounds"); do
    for i in 0 1 2 3; do
        who=${contenders[$i]:-tarn}
        kind=echo
        row=$idle_row
        if [ "$i" = 3 ]; then
            kind=idle_echo
            row="$idle_row (idle_echo: no buffer while idle)"
        fi
        port=$(port_of "$round" "$i" 19500)
        log "idle round $round/$rounds: $who $kind, $idle_conns connections"
        start_server "$who" "$kind" "$port"
        rss0=$(rss_kb "$server")
        fds0=$(fds "$server")
        out="$work/idle.out"
        taskset -c 1 "$bins/echo_load" "127.0.0.1:$port" --idle "$idle_conns" >"$out" &
        client=$!
        # Until every connection is accepted and its task is parked in read.
        for _ in $(seq 600); do
            grep -q connected "$out" && [ "$(fds "$server")" -ge $((fds0 + idle_conns)) ] && break
            kill -0 "$client" 2>/dev/null || { echo "idle client failed" >&2; exit 1; }
            sleep 0.05
        done
        sleep 0.3
        rss1=$(rss_kb "$server")
        record "$row" "$who" "$(awk -v a="$rss0" -v b="$rss1" -v n="$idle_conns" 'BEGIN { printf "%.1f", (b - a) * 1024 / n }')"
        kill "$client"
        wait "$client" 2>/dev/null || true
        stop_server
    done
done
base "$idle_row (idle_echo: no buffer while idle)" "$idle_row"

echo
echo "tarn vs tokio vs smol: $rounds round(s) of ${secs} s, $(nproc) CPUs, $(uname -r)"
echo "servers on CPU 0, load on CPU 1; medians, ratios to tokio (lower is better for CPU, latency, syscalls, RSS);"
echo "tarn/base: a tarn-only variant row divided by the tarn row it varies (epoll, tarn's own executor); — where there is none"
echo
"$bins/report" "$results"
