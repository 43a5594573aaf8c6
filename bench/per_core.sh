#!/usr/bin/env bash
# Thread per core: tarn's examples/per_core.rs beside tokio (one
# current_thread runtime per thread, src/bin/tokio_per_core.rs) and smol (a
# LocalExecutor per thread over smol's one reactor, src/bin/smol_per_core.rs),
# written line for line alike, each with one and with two executor threads
# serving echo_load's 128 connections x 64 B ping-pong. Per message: the
# server's CPU time (all threads, from /proc), its syscalls (perf
# tracepoints on every thread, or strace), with futex and the epoll waits
# apart, how often its threads went to sleep (voluntary context switches:
# waits that found nothing ready, whose scheduler time is most of the
# kernel's share of the CPU), and its user-space instructions under callgrind (the difference
# between a run and one twice as long, so start-up and connection set-up
# cancel out). Prints one table of medians with the tarn/tokio ratios,
# then one of min-max; the "x2 / x1" rows are each contender's two-thread
# figure over its one-thread figure of the same round.
#
#   bench/per_core.sh                  # 3 rounds of 5 s runs (about 6 minutes)
#   bench/per_core.sh --rounds 5 --secs 10
#   bench/per_core.sh --quick          # 1 round of 2 s runs (the smoke run, about 90 s)
#   bench/per_core.sh --no-callgrind   # the timed and syscall rows only
#
# Nothing is pinned: on a 2-core machine the load client shares the cores
# with the servers' threads, so msgs/s is not a scaling figure here; the
# cost per message is what carries from 2 cores to more.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
secs=5
cg_secs=2
conns=128
size=64
callgrind=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) rounds=1; secs=2; cg_secs=1; shift ;;
        --rounds) rounds="$2"; shift 2 ;;
        --secs) secs="$2"; shift 2 ;;
        --no-callgrind) callgrind=; shift ;;
        *) echo "usage: bench/per_core.sh [--quick] [--rounds N] [--secs S] [--no-callgrind]" >&2; exit 2 ;;
    esac
done

source bench/lib.sh

missing=()
command -v strace >/dev/null || missing+=(strace)
if [ -n "$callgrind" ]; then
    command -v valgrind >/dev/null || missing+=(valgrind)
fi
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

log "building (release)"
cargo build --release --quiet --example per_core
cargo build --release --quiet --manifest-path bench/Cargo.toml \
    --bin tokio_per_core --bin smol_per_core --bin echo_load --bin report
bins=bench/target/release

contenders=(tarn tokio smol)
binary() {
    case "$1" in
        tarn) echo target/release/examples/per_core ;;
        *) echo "$bins/$1_per_core" ;;
    esac
}

# start_server CONTENDER PORT THREADS [WRAPPER...]: starts the server with
# THREADS executor threads (under WRAPPER, e.g. valgrind), sets $server,
# and waits until it listens. env and valgrind exec: $server is its pid.
start_server() {
    local who=$1 port=$2 threads=$3 out="$work/server.out" i
    shift 3
    env TARN_SELECTOR=epoll "$@" "$(binary "$who")" "127.0.0.1:$port" "$threads" \
        >"$out" 2>"$work/server.err" &
    server=$!
    for i in $(seq 600); do
        grep -q listening "$out" && return 0
        kill -0 "$server" 2>/dev/null || break
        sleep 0.05
    done
    echo "$who server did not start:" >&2
    cat "$out" "$work/server.err" >&2
    exit 1
}
stop_server() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
}
# msgs OUT: the messages of an echo_load summary line.
msgs() { awk '$1 == "msgs" { print $2 }' "$1"; }
# wait_line OUT WORD PID: until OUT has a line starting with WORD (fails if
# PID, the client, has ended without one).
wait_line() {
    for _ in $(seq 1200); do
        grep -q "^$2" "$1" && return 0
        kill -0 "$3" 2>/dev/null || break
        sleep 0.05
    done
    grep -q "^$2" "$1" && return 0
    echo "echo_load failed:" >&2
    cat "$1" >&2
    exit 1
}
# ratio A B: A / B.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# --- CPU and syscalls per message ----------------------------------------
# One server per contender, thread count and round. The client connects,
# waits for SIGUSR1, runs $secs of load, and waits for a second SIGUSR1
# before it closes: the CPU time and the syscalls are those of the steady
# state alone.
declare -A cpu_of
for round in $(seq "$rounds"); do
    for threads in 1 2; do
        for i in "${!contenders[@]}"; do
            who=${contenders[$i]}
            port=$(port_of "$round" $((i + 3 * threads)) 18000)
            log "timed round $round/$rounds: $who x$threads"
            start_server "$who" "$port" "$threads"
            out="$work/load.out"
            trace="$work/calls.out"
            "$bins/echo_load" "127.0.0.1:$port" --conns "$conns" --size "$size" --secs "$secs" \
                --wait-usr1 >"$out" &
            client=$!
            wait_line "$out" connected "$client"
            count_start "$server" "$trace"
            t0=$(cpu_ticks "$server")
            u0=$(user_ticks "$server")
            z0=$(sleeps "$server")
            kill -USR1 "$client"
            wait_line "$out" msgs "$client"
            t1=$(cpu_ticks "$server")
            u1=$(user_ticks "$server")
            z1=$(sleeps "$server")
            count_stop
            kill -USR1 "$client"
            wait "$client"
            n=$(msgs "$out")
            row="echo x$threads"
            record "$row: msgs/s" "$who" "$(awk '$1 == "msgs" { print $6 }' "$out")"
            cpu=$(cpu_us "$t0" "$t1" "$n")
            record "$row: server CPU µs/msg" "$who" "$cpu"
            record "$row: server user CPU µs/msg" "$who" "$(cpu_us "$u0" "$u1" "$n")"
            record "$row: server sleeps/msg" "$who" "$(awk -v a="$z0" -v b="$z1" -v n="$n" 'BEGIN { printf "%.4f", (b - a) / n }')"
            syscall_rows "$row" "$who" "$n" "$trace" msg
            cpu_of[$who/$threads]=$cpu
            stop_server
        done
    done
    for who in "${contenders[@]}"; do
        record "CPU µs/msg x2 / x1" "$who" "$(ratio "${cpu_of[$who/2]}" "${cpu_of[$who/1]}")"
    done
done

# --- instructions per message (callgrind) --------------------------------
# Each server under callgrind: three loads in turn, $cg_secs (warm-up),
# $cg_secs, then twice $cg_secs, each a fresh echo_load; after each, once
# the server has closed the connections, callgrind dumps its counts and
# zeroes them. The last two differ by their messages alone, so
#   Ir/msg = (Ir of the long load - Ir of the short one) / (their msgs' difference)
# counts every thread's user-space instructions per message, with start-up
# and connection set-up cancelled out.
ir() { awk '/^(summary|totals):/ { print $2; exit }' "$profile.$1"; }
if [ -n "$callgrind" ]; then
    declare -A ir_of
    for round in $(seq "$rounds"); do
        for threads in 1 2; do
            for i in "${!contenders[@]}"; do
                who=${contenders[$i]}
                port=$(port_of "$round" $((i + 3 * threads)) 18400)
                log "callgrind round $round/$rounds: $who x$threads"
                profile="$work/cg.$who.out"
                rm -f "$profile"*
                start_server "$who" "$port" "$threads" valgrind --tool=callgrind \
                    --callgrind-out-file="$profile"
                # Its executor threads make their reactors after it says
                # it listens: count the fds once they stop changing.
                idle_fds=$(fds "$server")
                for _ in $(seq 40); do
                    sleep 0.25
                    now=$(fds "$server")
                    [ "$now" = "$idle_fds" ] && break
                    idle_fds=$now
                done
                declare -a sent=()
                part=0
                for load_secs in "$cg_secs" "$cg_secs" $((2 * cg_secs)); do
                    out="$work/cg-load.out"
                    "$bins/echo_load" "127.0.0.1:$port" --conns "$conns" --size "$size" \
                        --secs "$load_secs" >"$out"
                    sent+=("$(msgs "$out")")
                    for _ in $(seq 600); do
                        [ "$(fds "$server")" -le "$idle_fds" ] && break
                        sleep 0.05
                    done
                    sleep 0.2
                    callgrind_control --dump "$server" >"$work/control.out" 2>&1 || {
                        echo "callgrind_control failed:" >&2
                        cat "$work/control.out" >&2
                        exit 1
                    }
                    part=$((part + 1))
                    for _ in $(seq 100); do
                        [ -s "$profile.$part" ] && grep -q '^totals:' "$profile.$part" && break
                        sleep 0.05
                    done
                done
                stop_server
                per=$(awk -v a="$(ir 2)" -v b="$(ir 3)" -v m="${sent[1]}" -v n="${sent[2]}" \
                    'BEGIN { printf "%.0f", (b - a) / (n - m) }')
                record "echo x$threads: callgrind Ir/msg" "$who" "$per"
                ir_of[$who/$threads]=$per
            done
        done
        for who in "${contenders[@]}"; do
            record "callgrind Ir/msg x2 / x1" "$who" "$(ratio "${ir_of[$who/2]}" "${ir_of[$who/1]}")"
        done
    done
fi

echo
echo "thread per core, echo $conns conns x $size B: $rounds round(s), ${secs} s runs, $(nproc) CPUs, $(uname -r)"
echo "nothing pinned (the load client shares the cores); medians; syscalls: $counter$([ -n "$callgrind" ] && echo "; callgrind loads of $cg_secs and $((2 * cg_secs)) s")"
echo
"$bins/report" "$results"
