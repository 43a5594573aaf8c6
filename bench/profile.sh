#!/usr/bin/env bash
# Where tarn's servers spend their instructions: runs tarn's http_hello
# (release build, with symbols) under `valgrind --tool=callgrind` for a
# fixed number of wrk requests, or tarn's echo under echo_load for a few
# seconds, then prints the top functions by inclusive and by self cost
# with callgrind_annotate. See bench/README.md.
#
#   bench/profile.sh                      # http_hello, 100,000 requests over 64 connections
#   bench/profile.sh --requests 50000 --conns 512
#   bench/profile.sh echo --secs 5        # echo under echo_load (64 B x 64 connections)
#   bench/profile.sh --top 40 --keep /tmp/cg.out   # more rows; keep the raw profile
#   bench/profile.sh --server tokio       # the same load against the tokio peer (or smol),
#                                         # to compare instructions per request
#
# Callgrind counts instructions (Ir), not time: the kernel's work inside a
# syscall is invisible, so syscall wrappers look cheap; the figures say
# which user-space code runs how often, and how much of it there is. The
# whole run is profiled, start-up included (a few thousand instructions,
# nothing beside the requests). The server runs tens of times slower under
# callgrind; the default run still takes only a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

what=http
server=tarn
requests=100000
conns=64
secs=3
top=25
keep=
while [ $# -gt 0 ]; do
    case "$1" in
        http | echo) what="$1"; shift ;;
        --server) server="$2"; shift 2 ;;
        --requests) requests="$2"; shift 2 ;;
        --conns) conns="$2"; shift 2 ;;
        --secs) secs="$2"; shift 2 ;;
        --top) top="$2"; shift 2 ;;
        --keep) keep="$2"; shift 2 ;;
        *) echo "usage: bench/profile.sh [http|echo] [--server tarn|tokio|smol] [--requests N] [--conns N] [--secs S] [--top N] [--keep FILE]" >&2; exit 2 ;;
    esac
done

log() { printf '== %s\n' "$*" >&2; }

missing=()
command -v valgrind >/dev/null || missing+=(valgrind)
command -v callgrind_annotate >/dev/null || missing+=(valgrind)
[ "$what" = http ] && ! command -v wrk >/dev/null && missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

log "building (release, with symbols: both workspaces set debug = 1)"
cargo build --release --quiet --example http_hello --example echo
cargo build --release --quiet --manifest-path bench/Cargo.toml --bin echo_load \
    --bin tokio_http --bin tokio_echo --bin smol_http --bin smol_echo

work=$(mktemp -d)
# Ends this shell's unreaped background jobs (never a reaped pid, which
# may since belong to another process).
cleanup() {
    local pid
    for pid in $(jobs -p); do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

profile="$work/callgrind.out"
port=$((18900 + RANDOM % 100))
case "$server" in
    tarn) server_bin=target/release/examples/$([ "$what" = http ] && echo http_hello || echo echo) ;;
    tokio | smol) server_bin=bench/target/release/${server}_${what} ;;
    *) echo "bench/profile.sh: --server takes tarn, tokio or smol, not $server" >&2; exit 2 ;;
esac
log "starting $server_bin under callgrind on 127.0.0.1:$port"
TARN_SELECTOR=epoll valgrind --tool=callgrind --callgrind-out-file="$profile" \
    "$server_bin" "127.0.0.1:$port" >"$work/server.out" 2>"$work/valgrind.err" &
server_pid=$!
for _ in $(seq 600); do
    grep -q listening "$work/server.out" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/valgrind.err" >&2; exit 1; }
    sleep 0.1
done
grep -q listening "$work/server.out" || { echo "server did not start" >&2; exit 1; }

if [ "$what" = http ]; then
    # wrk has no request count: this script stops its (one) thread after
    # $requests responses (the requests then in flight are answered too)
    # and leaves a file behind, upon which wrk is told to finish (its main
    # thread would otherwise sleep out the whole -d).
    cat >"$work/stop.lua" <<EOF
local answered = 0
response = function(status, headers, body)
    if status ~= 200 then
        io.stderr:write("bad status " .. status .. "\n")
        os.exit(1)
    end
    answered = answered + 1
    if answered == $requests then
        io.open("$work/done", "w"):close()
        wrk.thread:stop()
    end
end
EOF
    log "wrk: $requests requests over $conns connections"
    wrk -t1 -c"$conns" -d600s -s "$work/stop.lua" "http://127.0.0.1:$port/" >"$work/wrk.out" &
    client=$!
    while kill -0 "$client" 2>/dev/null && [ ! -e "$work/done" ]; do
        sleep 0.2
    done
    kill -INT "$client" 2>/dev/null || true
    wait "$client" || { echo "wrk failed" >&2; exit 1; }
    units=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
    unit=request
else
    log "echo_load: 64 B messages over $conns connections for $secs s"
    bench/target/release/echo_load "127.0.0.1:$port" --conns "$conns" --secs "$secs" >"$work/echo.out"
    units=$(awk '{ print $2 }' "$work/echo.out")
    unit=message
fi

# SIGTERM ends the server; valgrind then writes the profile.
kill -TERM "$server_pid"
wait "$server_pid" 2>/dev/null || true
[ -s "$profile" ] || { echo "callgrind wrote no profile:" >&2; cat "$work/valgrind.err" >&2; exit 1; }
[ -n "$keep" ] && cp "$profile" "$keep"

# callgrind_annotate's function list as "Ir<TAB>file<TAB>function<TAB>object".
# callgrind splits a function into one entry per source file its code comes
# from (inlined code keeps its file), so one function may appear several
# times: the self view keeps the pieces (the file says whose code it is);
# in the inclusive view the piece from the function's own file already
# holds the whole function, so it keeps the largest piece.
functions() {
    callgrind_annotate --auto=no --threshold=100 "$@" "$profile" 2>/dev/null |
        awk '/^-+$/ { dashes++; next }
            dashes >= 4 && match($0, /^ *[0-9,]+ \( *[0-9.]+%\)  /) {
                ir = substr($0, 1, RLENGTH); sub(/ \(.*/, "", ir); gsub(/[ ,]/, "", ir)
                rest = substr($0, RLENGTH + 1); obj = ""
                if (match(rest, / \[[^]]*\]$/)) { obj = substr(rest, RSTART + 2, RLENGTH - 3); rest = substr(rest, 1, RSTART - 1) }
                i = index(rest, ":")
                if (i == 0) next # PROGRAM TOTALS
                printf "%s\t%s\t%s\t%s\n", ir, substr(rest, 1, i - 1), substr(rest, i + 1), obj
            }'
}
functions >"$work/self.tsv"
functions --inclusive=yes >"$work/incl.tsv"
total=$(awk '/^(summary|totals):/ { print $2; exit }' "$profile")

# The category of a piece of code (a heuristic, by file, then by the crate
# that leads the function's name, then by library and name):
#   tarn reactor      reactor/ and selector/ (sources, wakers, timers, epoll)
#   tarn executor     executor/ (run queue, task polling, join handles)
#   tarn net          net/ (TcpStream, TcpListener)
#   user code         the example (examples/*.rs, and code inlined into the
#                     task's poll: the async fn's state machine)
#   futures-io        the futures-io/futures-util adaptors (read, write_all)
#   syscall wrappers  libc's entries to the kernel (recv, send, epoll_wait,
#                     ...); callgrind counts their user-space instructions only
#   malloc/free, libc mem*/str*, std/core/alloc (Rust's library, not inlined),
#   start-up          the dynamic loader, libc's start-up and stdio
cat >"$work/category.awk" <<'EOF'
function category(file, fn, obj,    lead) {
    if (file ~ /(^|\/)(reactor|selector)\/src\//) return "tarn reactor"
    if (file ~ /(^|\/)executor\/src\//) return "tarn executor"
    if (file ~ /(^|\/)net\/src\//) return "tarn net"
    if (file ~ /(^|\/)examples\// || file ~ /(^|\/)bench\/src\//) return "user code"
    if (fn ~ /TaskFuture<F> as core::future::future::Future>::poll/) return "user code"
    lead = fn; sub(/^</, "", lead); sub(/::.*/, "", lead)
    if (lead ~ /^tarn_(reactor|selector)$/) return "tarn reactor"
    if (lead == "tarn_executor") return "tarn executor"
    if (lead == "tarn_net") return "tarn net"
    if (lead == "http_hello" || lead == "echo" || lead ~ /^(tokio|smol)_(http|echo)$/ || lead == "tarn_bench") return "user code"
    if (lead ~ /^(tokio|mio)$/ || file ~ /\/(tokio|mio)-[0-9]/) return "tokio runtime"
    if (lead ~ /^(smol|async_io|async_executor|async_task|polling|concurrent_queue|event_listener|futures_lite)$/ || file ~ /\/(async-io|async-executor|async-task|polling|concurrent-queue|event-listener|futures-lite)-[0-9]/) return "smol runtime"
    if (lead ~ /^futures_/ || file ~ /\/futures-(io|util)-/) return "futures-io"
    if (obj ~ /ld-linux/ || file ~ /\/elf\// || fn ~ /^_dl_/) return "start-up"
    if (obj ~ /libc\.so/ || file ~ /sysdeps|\/libio\/|\/malloc\/|\/string\//) {
        if (fn ~ /malloc|free|tcache|realloc|calloc|_int_/) return "malloc/free"
        if (fn ~ /^__(mem|str)|^(mem|str)[a-z]*$/) return "libc mem*/str*"
        if (file ~ /sysdeps\/unix\/sysv\/linux/ || fn ~ /^(__libc_)?(recv|send|read|write|epoll_|accept|close|fcntl|syscall|ioctl|[gs]etsockopt|clock_gettime|__clock_gettime)/) return "syscall wrappers"
        return "start-up"
    }
    if (lead ~ /^(std|core|alloc)$/ || file ~ /^\/rustc\//) return "std/core/alloc"
    return "other"
}
EOF
short() { # paths without the toolchain's, registry's and checkout's prefixes
    sed -E -e 's#/rustc/[0-9a-f]+/library/#rust:#g' -e 's#/root/\.cargo/registry/src/[^/]+/##g' \
        -e "s#$(pwd)/##g"
}

per=$(awk -v t="$total" -v n="$units" 'BEGIN { printf "%.0f", t / n }')
echo
echo "$server $what under callgrind: $units ${unit}s, $total instructions (Ir), $per Ir per $unit"
echo
echo "== where the instructions go, by category (self cost; see the comment in bench/profile.sh)"
awk -F'\t' -v t="$total" -v n="$units" -v unit="$unit" "$(cat "$work/category.awk")"'
    { ir[category($2, $3, $4)] += $1 }
    END { for (c in ir) printf "%12d  %5.1f%%  %7.0f Ir/%s  %s\n", ir[c], ir[c] * 100 / t, ir[c] / n, unit, c }' \
    "$work/self.tsv" | sort -rn
echo
echo "== top $top by self cost (instructions in the function's own code, per source file)"
awk -F'\t' -v t="$total" "$(cat "$work/category.awk")"'
    { printf "%12d  %5.1f%%  %-16s  %s  (%s)\n", $1, $1 * 100 / t, category($2, $3, $4), $3, $2 }' \
    "$work/self.tsv" | sort -rn | sed -n "1,${top}p" | short
echo
echo "== top $top by inclusive cost (the function and what it calls; start-up frames left out)"
awk -F'\t' -v t="$total" '
    $3 ~ /^(main|\(below main\)|0x[0-9a-f]+|__libc_start|_start)/ || $3 ~ /lang_start|__rust_begin_short_backtrace|::main$/ { next }
    $1 > ir[$3] { ir[$3] = $1 }
    END { for (f in ir) printf "%12d  %5.1f%%  %s\n", ir[f], ir[f] * 100 / t, f }' \
    "$work/incl.tsv" | sort -rn | sed -n "1,${top}p" | short
