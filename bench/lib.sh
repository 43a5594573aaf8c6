# What bench/per_core.sh shares with a benchmark script (sourced, not run):
# a work directory cleaned up at exit with every background job, the
# results file that `report` reads, the server's CPU time from /proc, and
# syscall counting over a window (perf tracepoints on every thread of the
# server, or strace where perf cannot count them).

log() { printf '== %s\n' "$*" >&2; }

work=$(mktemp -d)
results="$work/results.tsv"
: >"$results"
# Ends what is still running, newest first (a tracer before its tracee: a
# SIGTERM sent while a tracer lets go of a process can be lost), and kills
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

# record ROW CONTENDER VALUE
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; }

clk_tck=$(getconf CLK_TCK)
# cpu_ticks PID: the process's user + system CPU time so far, in clock
# ticks, all threads. (Fields after "pid (comm) ": utime 12, stime 13.)
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# user_ticks PID: the user-space part of cpu_ticks.
user_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 }'; }
# sleeps PID: how often the process's threads have gone to sleep so far
# (voluntary context switches, summed over its threads): each one is a
# wait that found nothing ready, and kernel time spent on the scheduler.
sleeps() { cat /proc/"$1"/task/*/status | awk '$1 == "voluntary_ctxt_switches:" { n += $2 } END { print n + 0 }'; }
# cpu_us TICKS0 TICKS1 UNITS: microseconds of CPU per unit of work.
cpu_us() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$clk_tck" 'BEGIN { printf "%.4f", (b - a) * 1e6 / hz / n }'; }
fds() { ls "/proc/$1/fd" | wc -l; }
# port_of ROUND INDEX BASE: a fresh port per run, past TIME_WAIT.
port_of() { echo $(($3 + $1 * 10 + $2)); }

# --- syscalls over a window ----------------------------------------------
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
# syscall_rows PREFIX CONTENDER UNITS OUT [UNIT]: records the calls per
# unit (request, message): epoll waits (epoll_wait, epoll_pwait,
# epoll_pwait2), epoll_ctl, read (read, recvfrom, readv, recvmsg), read
# EAGAIN, write (write, writev, sendto, sendmsg), futex, all, and all but
# the epoll waits.
syscall_rows() {
    local prefix=$1 who=$2 n=$3 unit=${5:-req} row value
    calls "$4" | awk -v n="$n" '
        $1 == "all" { all = $2; next }
        $1 ~ /^epoll_(wait|pwait|pwait2)$/ { ew += $2 }
        $1 == "epoll_ctl" { ec += $2 }
        $1 ~ /^(read|recvfrom|readv|recvmsg)$/ { rd += $2; again += $3 }
        $1 ~ /^(write|writev|sendto|sendmsg)$/ { wr += $2 }
        $1 == "futex" { fx += $2 }
        END {
            printf "epoll waits\t%.4f\n", ew / n
            printf "epoll_ctl\t%.4f\n", ec / n
            printf "read\t%.4f\n", rd / n
            printf "read EAGAIN\t%.4f\n", again / n
            printf "write\t%.4f\n", wr / n
            printf "futex\t%.4f\n", fx / n
            printf "all\t%.4f\n", all / n
            printf "all but epoll waits\t%.4f\n", (all - ew) / n
        }' | while IFS=$'\t' read -r row value; do
        record "$prefix syscalls/$unit: $row" "$who" "$value"
    done
}
