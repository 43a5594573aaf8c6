#!/usr/bin/env bash
# hyper on tarn beside hyper on tokio: the same service, hyper and
# hyper-util on each runtime's single thread (src/bin/hyper_tarn.rs and
# src/bin/hyper_tokio.rs, written line for line alike), plus tarn-hyper's
# own Server (src/bin/hyper_tarn_server.rs) as a tarn-only variant row.
# Measures server CPU per request under wrk (HTTP/1.1) and h2load (HTTP/2,
# prior-knowledge h2c), syscalls per request (perf tracepoints, or strace
# where perf cannot count them), and user-space instructions per request
# under callgrind. Prints one table of medians with the tarn/tokio ratio
# (and tarn/base: the Server variant over the bare tarn loop), then one of
# min–max. Every row is described in bench/README.md.
#
#   bench/hyper.sh                        # 3 rounds of 5 s runs (about 3 minutes)
#   bench/hyper.sh --rounds 5 --secs 10
#   bench/hyper.sh --quick --no-server    # 1 round of 1 s runs, small counts: about 17 s (smoke run)
#   bench/hyper.sh --no-timed             # syscalls and callgrind only (deterministic rows)
#   bench/hyper.sh --keep /tmp/cg         # keep round 1's callgrind profiles, to annotate
#
# Servers are pinned to CPU 0 and every load generator to CPU 1; the
# contenders are interleaved tarn, tokio, tarn Server, tarn, ...
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
secs=5
# Requests per connection-batch under callgrind (see the callgrind section).
cg_requests=2000
# Requests per protocol in the syscall-counting runs.
sys_requests=100000
timed=1
callgrind=1
variant=1
keep=
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) rounds=1; secs=1; cg_requests=200; sys_requests=20000; shift ;;
        --rounds) rounds="$2"; shift 2 ;;
        --secs) secs="$2"; shift 2 ;;
        --requests) cg_requests="$2"; shift 2 ;;
        --syscall-requests) sys_requests="$2"; shift 2 ;;
        --no-timed) timed=; shift ;;
        --no-callgrind) callgrind=; shift ;;
        --no-server) variant=; shift ;;
        --keep) keep="$2"; shift 2 ;;
        *)
            echo "usage: bench/hyper.sh [--quick] [--rounds N] [--secs S] [--requests N] [--syscall-requests N]" >&2
            echo "                      [--no-timed] [--no-callgrind] [--no-server] [--keep DIR]" >&2
            exit 2
            ;;
    esac
done

log() { printf '== %s\n' "$*" >&2; }

# --- tools ---------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v taskset >/dev/null || missing+=(util-linux)
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
cargo build --release --quiet --manifest-path bench/Cargo.toml \
    --bin hyper_tarn --bin hyper_tokio --bin hyper_tarn_server --bin report
bins=bench/target/release

# --- bookkeeping ---------------------------------------------------------
work=$(mktemp -d)
results="$work/results.tsv"
: >"$results"
# Ends what is still running, newest first (a tracer before its tracee),
# and kills what a SIGTERM did not end within 2 s. Only this shell's
# unreaped background jobs (`jobs -p`) are signalled, never a pid that has
# been reaped and may since belong to another process.
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

# The contenders. `server` (tarn-hyper's Server) is reported in the tarn
# column of rows of its own, with tarn/base against the bare tarn loop.
contenders=(tarn tokio)
[ -n "$variant" ] && contenders+=(server)
binary() {
    case "$1" in
        tarn) echo "$bins/hyper_tarn" ;;
        tokio) echo "$bins/hyper_tokio" ;;
        server) echo "$bins/hyper_tarn_server" ;;
    esac
}

# record ROW CONTENDER VALUE: for `server`, the row gets the suffix
# " (tarn-hyper Server)", its figure goes in the tarn column, and the
# row's base is ROW.
record() {
    if [ "$2" = server ]; then
        printf '%s\t%s\t%s\n' "$1 (tarn-hyper Server)" tarn "$3" >>"$results"
        printf '#base\t%s\t%s\n' "$1 (tarn-hyper Server)" "$1" >>"$results"
    else
        printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"
    fi
}

clk_tck=$(getconf CLK_TCK)
# The server's user and system CPU time so far, in clock ticks (all
# threads), as "USER SYS".
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'; }
# cpu_us TICKS0 TICKS1 REQUESTS: microseconds of CPU per request.
cpu_us() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$clk_tck" 'BEGIN { printf "%.4f", (b - a) * 1e6 / hz / n }'; }
# cpu_rows ROW CONTENDER "USER0 SYS0" "USER1 SYS1" REQUESTS SECS: records
# the server's CPU µs/req (user + system), its user and system parts, and
# how busy its CPU was.
cpu_rows() {
    local u0 s0 u1 s1
    read -r u0 s0 <<<"$3"
    read -r u1 s1 <<<"$4"
    record "$1 server CPU µs/req" "$2" "$(cpu_us $((u0 + s0)) $((u1 + s1)) "$5")"
    record "$1 server user µs/req" "$2" "$(cpu_us "$u0" "$u1" "$5")"
    record "$1 server sys µs/req" "$2" "$(cpu_us "$s0" "$s1" "$5")"
    record "$1 server CPU %" "$2" "$(cpu_pct $((u0 + s0)) $((u1 + s1)) "$6")"
}
# cpu_pct TICKS0 TICKS1 SECS: how busy the server's CPU was.
cpu_pct() { awk -v a="$1" -v b="$2" -v s="$3" -v hz="$clk_tck" 'BEGIN { printf "%.1f", (b - a) * 100 / hz / s }'; }
fds() { ls "/proc/$1/fd" | wc -l; }

# start_server CONTENDER PORT [WRAPPER...]: starts the server on CPU 0
# (under WRAPPER, e.g. valgrind, if given), sets $server, and waits until it
# listens. taskset, env and valgrind exec, so $server is the server's pid.
start_server() {
    local who=$1 port=$2 out="$work/server.out" i
    shift 2
    TARN_SELECTOR=epoll taskset -c 0 "$@" "$(binary "$who")" "127.0.0.1:$port" >"$out" 2>"$work/server.err" &
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

port_of() { # port_of ROUND INDEX BASE: a fresh port per run, past TIME_WAIT
    echo $(($3 + $1 * 10 + $2))
}

# wrk_run PORT SECS OUT: wrk -t1 -c64 on CPU 1; fails on bad responses.
wrk_run() {
    taskset -c 1 wrk -t1 -c64 -d"$2"s "http://127.0.0.1:$1/" >"$3"
    if grep -q -e 'Non-2xx' -e 'Socket errors' "$3"; then
        echo "wrk saw errors:" >&2
        cat "$3" >&2
        exit 1
    fi
}
wrk_requests() { awk '/requests in/ { print $1 }' "$1"; }
wrk_secs() { awk '/requests in/ { s = $4; sub(/s,$/, "", s); print s }' "$1"; }
wrk_rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }

# h2load_run OUT ARGS...: h2load on CPU 1; fails unless every request it
# started and finished succeeded with a 2xx (a timed run stops with some
# requests started and not done: those are not failures).
h2load_run() {
    local out=$1
    shift
    taskset -c 1 h2load "$@" >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
    if ! awk '/^requests:/ { ok = ($6 == $8 && $10 == 0 && $12 == 0 && $14 == 0) }
              /^status codes:/ { bad = $5 + $7 + $9 }
              END { exit !(ok && bad == 0) }' "$out"; then
        echo "h2load saw errors:" >&2
        cat "$out" >&2
        exit 1
    fi
}
h2load_requests() { awk '/^requests:/ { print $8 }' "$1"; }
h2load_secs() { awk '/^finished in/ { s = $3; sub(/s,$/, "", s); print s }' "$1"; }
h2load_rps() { awk '/^finished in/ { print $4 }' "$1"; }

h1="HTTP/1.1"
h2="HTTP/2"

# --- server CPU per request ----------------------------------------------
# One server per contender per round; wrk -t1 -c64 for $secs, then h2load
# -c64 -m10 (64 connections, 10 streams each) for $secs against it.
if [ -n "$timed" ]; then
    for round in $(seq "$rounds"); do
        for i in "${!contenders[@]}"; do
            who=${contenders[$i]}
            port=$(port_of "$round" "$i" 17000)
            log "timed round $round/$rounds: $who"
            start_server "$who" "$port"
            out="$work/load.out"
            t0=$(cpu_ticks "$server")
            wrk_run "$port" "$secs" "$out"
            t1=$(cpu_ticks "$server")
            record "$h1 wrk -c64 req/s" "$who" "$(wrk_rps "$out")"
            cpu_rows "$h1 wrk -c64" "$who" "$t0" "$t1" "$(wrk_requests "$out")" "$(wrk_secs "$out")"
            t0=$(cpu_ticks "$server")
            h2load_run "$out" -c64 -m10 -D "$secs" "http://127.0.0.1:$port/"
            t1=$(cpu_ticks "$server")
            record "$h2 h2load -c64 -m10 req/s" "$who" "$(h2load_rps "$out")"
            cpu_rows "$h2 h2load -c64 -m10" "$who" "$t0" "$t1" "$(h2load_requests "$out")" "$(h2load_secs "$out")"
            stop_server
        done
    done
fi

# --- syscalls per request ------------------------------------------------
# Counted while the server runs $sys_requests requests of each protocol
# (h2load --h1 -c64, one request in flight per connection like wrk's; then
# h2load -c64 -m10), divided by the requests. perf's syscall tracepoints
# count without slowing the server, so its batching is that of the timed
# runs; where perf cannot, strace -f -c counts (slowing the server, which
# then finds more ready per epoll_wait).
perf_events=(raw_syscalls:sys_enter)
for call in epoll_wait epoll_pwait epoll_pwait2 epoll_ctl read recvfrom readv recvmsg \
    write writev sendto sendmsg futex; do
    perf_events+=("syscalls:sys_enter_$call")
done
perf_args=()
for event in "${perf_events[@]}"; do perf_args+=(-e "$event"); done
# The reads that failed with EAGAIN (-11), mostly WouldBlock.
for call in read recvfrom readv recvmsg; do
    perf_args+=(-e "syscalls:sys_exit_$call" --filter 'ret == -11')
done
counter=strace
if command -v perf >/dev/null && perf stat -x, -o "$work/perf.check" "${perf_args[@]}" -- true 2>/dev/null &&
    ! grep -q -e 'not supported' -e 'not counted' "$work/perf.check"; then
    counter=perf
fi

# count_start PID OUT: counts PID's syscalls (every thread) into OUT until
# count_stop; sets $tracer.
count_start() {
    if [ "$counter" = perf ]; then
        perf stat -x, -o "$2" -p "$1" "${perf_args[@]}" &
    else
        strace -f -c -o "$2" -p "$1" 2>/dev/null &
    fi
    tracer=$!
    sleep 0.5
}
count_stop() {
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
}
# calls OUT: the counts as "syscall calls eagain" lines, plus "all N".
calls() {
    if [ "$counter" = perf ]; then
        # "count,unit,event,...": sys_enter_X counts calls, sys_exit_X the
        # filtered EAGAIN returns.
        awk -F, '$3 ~ /:/ {
            n = $1 + 0; ev = $3
            if (ev == "raw_syscalls:sys_enter") { print "all", n; next }
            if (sub(/^syscalls:sys_enter_/, "", ev)) calls[ev] += n
            else if (sub(/^syscalls:sys_exit_/, "", ev)) again[ev] += n
        }
        END { for (c in calls) print c, calls[c], again[c] + 0 }' "$1"
    else
        # strace -c: "% time, seconds, usecs/call, calls, [errors,] syscall".
        awk '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {
            errors = (NF == 6) ? $5 : 0; print $NF, $4, errors; all += $4
        }
        END { print "all", all + 0 }' "$1"
    fi
}
# syscall_rows PREFIX CONTENDER REQUESTS OUT: records the calls per
# request: epoll_wait (epoll_wait, epoll_pwait, epoll_pwait2), epoll_ctl,
# read (read, recvfrom, readv, recvmsg), read EAGAIN, write (write,
# writev, sendto, sendmsg), futex, all.
syscall_rows() {
    local prefix=$1 who=$2 n=$3 row value
    calls "$4" | awk -v n="$n" '
        $1 == "all" { all = $2; next }
        $1 ~ /^epoll_(wait|pwait|pwait2)$/ { ew += $2 }
        $1 == "epoll_ctl" { ec += $2 }
        $1 ~ /^(read|recvfrom|readv|recvmsg)$/ { rd += $2; again += $3 }
        $1 ~ /^(write|writev|sendto|sendmsg)$/ { wr += $2 }
        $1 == "futex" { fx += $2 }
        END {
            printf "epoll_wait\t%.4f\n", ew / n
            printf "epoll_ctl\t%.4f\n", ec / n
            printf "read\t%.4f\n", rd / n
            printf "read EAGAIN\t%.4f\n", again / n
            printf "write\t%.4f\n", wr / n
            printf "futex\t%.4f\n", fx / n
            printf "all\t%.4f\n", all / n
        }' | while IFS=$'\t' read -r row value; do
        record "$prefix $row" "$who" "$value"
    done
}

for round in $(seq "$rounds"); do
    for i in "${!contenders[@]}"; do
        who=${contenders[$i]}
        port=$(port_of "$round" "$i" 17300)
        log "syscalls round $round/$rounds: $who ($counter)"
        start_server "$who" "$port"
        out="$work/load.out"
        trace="$work/calls.out"
        count_start "$server" "$trace"
        h2load_run "$out" --h1 -n "$sys_requests" -c64 "http://127.0.0.1:$port/"
        count_stop
        syscall_rows "$h1 syscalls/req" "$who" "$sys_requests" "$trace"
        count_start "$server" "$trace"
        h2load_run "$out" -n "$sys_requests" -c64 -m10 "http://127.0.0.1:$port/"
        count_stop
        syscall_rows "$h2 syscalls/req" "$who" "$sys_requests" "$trace"
        stop_server
    done
done

# --- instructions per request (callgrind) ---------------------------------
# One server per contender per round under callgrind, on CPU 0. For each
# protocol three batches of requests over 4 connections run in turn (h2load
# --h1 -c4; then h2load -c4 -m10): $cg_requests to warm up, $cg_requests,
# then twice $cg_requests; after each the script waits until the server has
# closed the batch's connections and has callgrind dump its counts (and
# zero them: `callgrind_control --dump`). Start-up and first-use costs fall
# in the warm-up batch, which is not used, and the two others differ only
# by $cg_requests requests, so
#   Ir/req = (Ir of the 2N batch - Ir of the N batch) / N
# with the connections' accept, handshake and close cancelled out. The
# counts barely move between runs (timing changes only how many requests
# one wakeup finds): a round's figure is within about 1% of another's.
cg_conns=4
# ir PART: the instructions in part PART of the profile.
ir() { awk '/^(summary|totals):/ { print $2; exit }' "$profile.$1"; }
if [ -n "$callgrind" ]; then
    for round in $(seq "$rounds"); do
        for i in "${!contenders[@]}"; do
            who=${contenders[$i]}
            port=$(port_of "$round" "$i" 17600)
            log "callgrind round $round/$rounds: $who ($cg_requests, $cg_requests, $((2 * cg_requests)) requests a protocol)"
            profile="$work/cg.$who.out"
            rm -f "$profile"*
            start_server "$who" "$port" valgrind --tool=callgrind --callgrind-out-file="$profile"
            idle_fds=$(fds "$server")
            part=0
            for proto in h1 h2; do
                for n in "$cg_requests" "$cg_requests" $((2 * cg_requests)); do
                    if [ "$proto" = h1 ]; then
                        h2load_run "$work/load.out" --h1 -n "$n" -c"$cg_conns" "http://127.0.0.1:$port/"
                    else
                        h2load_run "$work/load.out" -n "$n" -c"$cg_conns" -m10 "http://127.0.0.1:$port/"
                    fi
                    # Until the server has closed the batch's connections.
                    for _ in $(seq 600); do
                        [ "$(fds "$server")" -le "$idle_fds" ] && break
                        sleep 0.05
                    done
                    sleep 0.2
                    if ! callgrind_control --dump "$server" >"$work/control.out" 2>&1; then
                        echo "callgrind_control failed:" >&2
                        cat "$work/control.out" >&2
                        exit 1
                    fi
                    part=$((part + 1))
                    for _ in $(seq 100); do
                        [ -s "$profile.$part" ] && grep -q '^totals:' "$profile.$part" && break
                        sleep 0.05
                    done
                done
            done
            stop_server
            for proto in h1 h2; do
                first=$([ "$proto" = h1 ] && echo 0 || echo 3)
                one=$(ir $((first + 2)))
                two=$(ir $((first + 3)))
                name=$([ "$proto" = h1 ] && echo "$h1" || echo "$h2")
                record "$name callgrind Ir/req" "$who" \
                    "$(awk -v a="$one" -v b="$two" -v n="$cg_requests" 'BEGIN { printf "%.0f", (b - a) / n }')"
                if [ -n "$keep" ] && [ "$round" = 1 ]; then
                    mkdir -p "$keep"
                    cp "$profile.$((first + 2))" "$keep/$who-$proto-n.callgrind"
                    cp "$profile.$((first + 3))" "$keep/$who-$proto-2n.callgrind"
                fi
            done
        done
    done
fi

echo
echo "hyper on tarn vs hyper on tokio: $rounds round(s), $([ -n "$timed" ] && echo "${secs} s runs, ")$(nproc) CPUs, $(uname -r)"
echo "servers on CPU 0, load on CPU 1; medians; tarn/tokio: lower is better except for req/s;"
echo "syscalls over $sys_requests requests a protocol ($counter)$([ -n "$callgrind" ] && echo "; callgrind batches of $cg_requests and $((2 * cg_requests)) requests over $cg_conns connections")"
[ -n "$variant" ] && echo "tarn/base: tarn-hyper's Server over the bare tarn loop (hyper_tarn)"
echo
"$bins/report" "$results"
if [ -n "$keep" ] && [ -n "$callgrind" ]; then
    echo
    echo "callgrind profiles (round 1, the batches of N and 2N requests) in $keep"
fi
