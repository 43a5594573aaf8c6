/*
 * tarn's syscall fault interposer: LD_PRELOAD'ed into a test process, it
 * makes the calls a non-blocking socket server relies on fail the way a
 * busy kernel makes them fail, and a quiet test machine almost never does.
 *
 *   eintr     epoll_wait, epoll_pwait2 (via syscall(2)), poll, ppoll and
 *             pselect with a timeout other than zero return -1/EINTR
 *             without waiting, as if a signal came. A zero-timeout look is
 *             spared: it does not sleep, so a signal does not interrupt it.
 *   spurious  a wait returns at once with an extra readable or writable
 *             event for a registered fd that is not ready in that
 *             direction (checked with a zero-timeout poll first), so the
 *             read or write that follows really gets EAGAIN unless the fd
 *             became ready meanwhile. Counted per direction; for a
 *             writable one, the next send or sendmsg on that fd is
 *             counted too, as EAGAIN or as bytes sent (see struct shared).
 *   short     send and sendmsg on a stream socket send 1 byte of a longer
 *             buffer (a nearly full send buffer).
 *   accept    accept4 fails with ECONNABORTED, EPROTO, EMFILE or ENOBUFS
 *             (the connection, if any, stays queued).
 *   ctl       epoll_ctl(EPOLL_CTL_ADD) of a connected or connecting stream
 *             socket fails with ENOMEM or ENOSPC (the watch limit).
 *             Listening sockets are spared, since a server that cannot
 *             watch its listener has nothing to serve, and so are datagram
 *             sockets: the fault models a connection the server can drop.
 *   pidfd     pidfd_open (via syscall(2)) fails with ENOSYS, as on a kernel
 *             before 5.3: child processes must be watched through SIGCHLD.
 *   sndbuf    a connection accept4 accepts gets a small send buffer (64
 *             KiB; SO_SNDBUF set right after the accept), as on a host short
 *             of socket memory. No call fails: this is a condition, not an
 *             error, injected here because accept is the one seam where a
 *             server's sockets can be changed from outside. It makes a
 *             server's socket wait not writable when its peer reads slowly
 *             (on loopback, autotuning grows a send buffer past a megabyte,
 *             more than a test's slow reader leaves unread), and so lets
 *             spurious writable events come.
 *
 * Not injected, because no kernel does it: EINTR from a non-blocking read
 * or write, EAGAIN or a short read while data is queued.
 *
 * Configuration, read once at load time:
 *   TARN_FAULTS      "eintr=0.05,spurious=0.1,short=0.2,accept=0.05,ctl=0.02":
 *                    the probability of each fault per eligible call; a
 *                    fault not named is off. A malformed value aborts the
 *                    process with a message saying what was wrong.
 *   TARN_FAULT_REPORT  a file to keep the counters and the on/off switch
 *                    in (see struct shared), for a test that runs this
 *                    process as a child; optional.
 *   TARN_FAULT_SEED  the seed of the schedule (decimal); 1 if unset. Each
 *                    thread draws from its own generator, seeded with the
 *                    seed and the order in which threads first asked, so a
 *                    seed replays the rates and, for one thread, the calls.
 * LD_PRELOAD is removed from the environment at load time, so that the
 * processes the test starts (clients, helpers) run without faults.
 *
 * The test reads what happened through tarn_faults_counts() and
 * tarn_faults_spurious() and can pause injection with tarn_faults_enable(0)
 * (to check, afterwards, that the server still serves).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_epoll_pwait2
#define SYS_epoll_pwait2 441
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

enum fault { EINTR_WAIT, SPURIOUS, SHORT_WRITE, ACCEPT_ERROR, CTL_ERROR, NO_PIDFD, SMALL_SNDBUF, FAULTS };
static const char *const NAMES[FAULTS] = {"eintr", "spurious", "short", "accept",
                                          "ctl",   "pidfd",    "sndbuf"};

/* The SO_SNDBUF the sndbuf fault sets (the kernel doubles it). The minimum
 * (about 4.6 KiB) would do as well, but slows every stream through it to a
 * crawl; 64 KiB only the ones whose reader stops. */
#define SMALL_SNDBUF_BYTES 32768

/* Per fault: the chance per eligible call out of 2^32 (0: off). */
static uint64_t threshold[FAULTS];

/* The spurious events in detail: by direction, and what the send that
 * followed a writable one got. A writable event not in either `then_`
 * counter had no send after it (the fd was closed first, or the send
 * failed otherwise, or none has come yet). */
enum spurious_detail { READABLE, WRITABLE, WRITABLE_THEN_EAGAIN, WRITABLE_THEN_SENT, DETAILS };

/* What happened, and the switch: in this process's memory, or in a file
 * mapped shared (TARN_FAULT_REPORT) so that another process (the test that
 * started this server) can read the counts and turn injection off. The
 * layout is the file's: 7 eligible, 7 injected, enabled, then the 4
 * spurious details, each a native-endian u64. */
struct shared {
    atomic_ulong eligible[FAULTS];
    atomic_ulong injected[FAULTS];
    atomic_ulong enabled;
    atomic_ulong spurious[DETAILS];
};
static struct shared local;
static struct shared *counters = &local;
static uint64_t seed = 1;
static atomic_ulong threads_seen;

/* ---- the real functions ------------------------------------------------ */

#define REAL(name)                                                              \
    static __typeof__(name) *real_##name##_ptr;                                 \
    static __typeof__(name) *real_##name(void) {                                \
        __typeof__(name) *f = __atomic_load_n(&real_##name##_ptr, __ATOMIC_RELAXED); \
        if (!f) {                                                               \
            f = (__typeof__(name) *)dlsym(RTLD_NEXT, #name);                    \
            if (!f) {                                                           \
                fprintf(stderr, "tarn fault interposer: no next %s\n", #name);  \
                abort();                                                        \
            }                                                                   \
            __atomic_store_n(&real_##name##_ptr, f, __ATOMIC_RELAXED);          \
        }                                                                       \
        return f;                                                               \
    }

REAL(epoll_wait)
REAL(epoll_ctl)
REAL(epoll_create1)
REAL(poll)
REAL(ppoll)
REAL(pselect)
REAL(accept4)
REAL(send)
REAL(sendmsg)
REAL(close)
REAL(syscall)

/* ---- the schedule ------------------------------------------------------- */

static uint64_t splitmix(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static __thread uint64_t rng_state;
static __thread int rng_ready;

static uint64_t next_random(void) {
    if (!rng_ready) {
        uint64_t ordinal = atomic_fetch_add(&threads_seen, 1);
        rng_state = seed ^ (ordinal * 0xd1b54a32d192ed03ULL);
        rng_ready = 1;
    }
    return splitmix(&rng_state);
}

/* Whether this eligible call gets fault `f`: counted either way. */
static int inject(enum fault f) {
    if (threshold[f] == 0 || !atomic_load_explicit(&counters->enabled, memory_order_relaxed))
        return 0;
    atomic_fetch_add_explicit(&counters->eligible[f], 1, memory_order_relaxed);
    if ((next_random() >> 32) >= threshold[f])
        return 0;
    return 1;
}

static void count(enum fault f) {
    atomic_fetch_add_explicit(&counters->injected[f], 1, memory_order_relaxed);
}

/* Per fd: a spurious writable event was injected and no send has come
 * since. Cleared by the next send or sendmsg (which is then counted) and by
 * close. */
#define TABLE 65536
static atomic_uchar write_pending[TABLE];

/* Counts a spurious event injected for `fd`, writable or not. */
static void count_spurious(int fd, int writable) {
    count(SPURIOUS);
    atomic_fetch_add_explicit(&counters->spurious[writable ? WRITABLE : READABLE], 1,
                              memory_order_relaxed);
    if (writable && fd >= 0 && fd < TABLE)
        atomic_store_explicit(&write_pending[fd], 1, memory_order_relaxed);
}

/* Whether a spurious writable event for `fd` awaits its send; clears it. */
static int take_write_pending(int fd) {
    return fd >= 0 && fd < TABLE &&
           atomic_load_explicit(&write_pending[fd], memory_order_relaxed) &&
           atomic_exchange_explicit(&write_pending[fd], 0, memory_order_relaxed);
}

/* Counts what the send after a spurious writable event got: `res` and
 * `err` (its errno). */
static void count_send_after_writable(ssize_t res, int err) {
    if (res >= 0)
        atomic_fetch_add_explicit(&counters->spurious[WRITABLE_THEN_SENT], 1, memory_order_relaxed);
    else if (err == EAGAIN || err == EWOULDBLOCK)
        atomic_fetch_add_explicit(&counters->spurious[WRITABLE_THEN_EAGAIN], 1, memory_order_relaxed);
}

/* ---- what is registered where (for spurious events) --------------------- */

struct registration {
    int epfd; /* -1: none */
    uint32_t events;
    uint64_t data;
};
static struct registration table[TABLE];
static unsigned char is_epfd[TABLE];
static int max_fd = -1;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static void forget_fd(int fd) {
    if (fd < 0 || fd >= TABLE)
        return;
    atomic_store_explicit(&write_pending[fd], 0, memory_order_relaxed);
    pthread_mutex_lock(&table_lock);
    table[fd].epfd = -1;
    if (is_epfd[fd]) {
        is_epfd[fd] = 0;
        for (int i = 0; i <= max_fd; i++)
            if (table[i].epfd == fd)
                table[i].epfd = -1;
    }
    pthread_mutex_unlock(&table_lock);
}

/* Which of IN and OUT `fd` is ready for now, by a zero-timeout poll. */
static short ready_now(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT, .revents = 0};
    if (real_poll()(&p, 1, 0) < 0)
        return POLLIN | POLLOUT; /* unknown: claim nothing */
    return p.revents;
}

/* Picks a registration of `epfd` at random and, if one of the directions it
 * watches is not ready, fills `ev` with a spurious event for it; returns
 * its fd, or -1. */
static int spurious_epoll_event(int epfd, struct epoll_event *ev) {
    int fd = -1;
    struct registration r = {0};
    pthread_mutex_lock(&table_lock);
    if (max_fd >= 0) {
        int start = (int)(next_random() % (uint64_t)(max_fd + 1));
        for (int i = 0; i <= max_fd; i++) {
            int at = (start + i) % (max_fd + 1);
            /* Oneshot registrations are disarmed once fired: no kernel
             * reports those, so they are left alone. */
            if (table[at].epfd == epfd && !(table[at].events & EPOLLONESHOT) &&
                (table[at].events & (EPOLLIN | EPOLLOUT))) {
                fd = at;
                r = table[at];
                break;
            }
        }
    }
    pthread_mutex_unlock(&table_lock);
    if (fd < 0)
        return -1;
    uint32_t idle = r.events & (EPOLLIN | EPOLLOUT) & ~(uint32_t)ready_now(fd);
    if (!idle)
        return -1;
    /* One direction, if both are idle. */
    if (idle == (EPOLLIN | EPOLLOUT))
        idle = (next_random() & 1) ? EPOLLIN : EPOLLOUT;
    ev->events = idle;
    ev->data.u64 = r.data;
    return fd;
}

/* ---- configuration ------------------------------------------------------ */

static void bad_config(const char *what, const char *value) {
    fprintf(stderr, "tarn fault interposer: %s in TARN_FAULTS=\"%s\" (expected e.g. "
                    "\"eintr=0.05,spurious=0.1,short=0.2,accept=0.05,ctl=0.02\")\n",
            what, value);
    abort();
}

/* Maps TARN_FAULT_REPORT, if set, as the counters (zeroed, enabled). */
static void map_report(void) {
    const char *path = getenv("TARN_FAULT_REPORT");
    if (!path || !*path)
        return;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, sizeof(struct shared)) < 0) {
        fprintf(stderr, "tarn fault interposer: TARN_FAULT_REPORT=%s: %s\n", path, strerror(errno));
        abort();
    }
    void *map = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        fprintf(stderr, "tarn fault interposer: mmap %s: %s\n", path, strerror(errno));
        abort();
    }
    real_close()(fd);
    counters = map;
    atomic_store(&counters->enabled, 1);
}

/* A fork while another thread holds table_lock would leave the child (which
 * has only the forking thread) a lock nobody will release, and its first
 * close would hang: so fork waits for the lock, and both sides release it. */
static void lock_table(void) { pthread_mutex_lock(&table_lock); }
static void unlock_table(void) { pthread_mutex_unlock(&table_lock); }

__attribute__((constructor)) static void configure(void) {
    for (int fd = 0; fd < TABLE; fd++)
        table[fd].epfd = -1;
    pthread_atfork(lock_table, unlock_table, unlock_table);
    atomic_store(&local.enabled, 1);
    map_report();
    const char *s = getenv("TARN_FAULT_SEED");
    if (s && *s) {
        char *end;
        seed = strtoull(s, &end, 10);
        if (*end) {
            fprintf(stderr, "tarn fault interposer: TARN_FAULT_SEED=\"%s\" is not a number\n", s);
            abort();
        }
    }
    const char *spec = getenv("TARN_FAULTS");
    if (spec) {
        const char *p = spec;
        while (*p) {
            const char *eq = strchr(p, '=');
            if (!eq)
                bad_config("a fault without '=rate'", spec);
            int f = 0;
            while (f < FAULTS && !(strlen(NAMES[f]) == (size_t)(eq - p) &&
                                   strncmp(NAMES[f], p, eq - p) == 0))
                f++;
            if (f == FAULTS)
                bad_config("an unknown fault (known: eintr, spurious, short, accept, ctl, pidfd, "
                           "sndbuf)",
                           spec);
            char *end;
            double rate = strtod(eq + 1, &end);
            if (end == eq + 1 || (*end && *end != ',') || !(rate >= 0.0 && rate <= 1.0))
                bad_config("a rate that is not a number from 0 to 1", spec);
            threshold[f] = (uint64_t)(rate * 4294967296.0);
            p = *end ? end + 1 : end;
        }
    }
    unsetenv("LD_PRELOAD");
}

/* ---- what the test calls ------------------------------------------------ */

/* Fills out_eligible[i] and out_injected[i] for each fault, in the order
 * eintr, spurious, short, accept, ctl, pidfd, sndbuf; returns the number of
 * faults (7). */
int tarn_faults_counts(uint64_t *out_eligible, uint64_t *out_injected) {
    for (int f = 0; f < FAULTS; f++) {
        out_eligible[f] = atomic_load(&counters->eligible[f]);
        out_injected[f] = atomic_load(&counters->injected[f]);
    }
    return FAULTS;
}

/* Turns injection on (1) or off (0) for the whole process. */
void tarn_faults_enable(int on) { atomic_store(&counters->enabled, on != 0); }

/* The seed in use. */
uint64_t tarn_faults_seed(void) { return seed; }

/* Fills out[i] with the spurious events' details, in the order readable,
 * writable, writable then EAGAIN, writable then sent; returns their number
 * (4). */
int tarn_faults_spurious(uint64_t *out) {
    for (int d = 0; d < DETAILS; d++)
        out[d] = atomic_load(&counters->spurious[d]);
    return DETAILS;
}

/* ---- the waits ---------------------------------------------------------- */

/* Whether a wait with this timeout may get EINTR: not a zero-timeout look,
 * which returns without sleeping. */
static int may_sleep_ms(int timeout_ms) { return timeout_ms != 0; }
static int may_sleep_ts(const struct timespec *t) {
    return !t || t->tv_sec != 0 || t->tv_nsec != 0;
}

/* epoll_wait and epoll_pwait2 alike: `wait` makes the real call with a
 * timeout of zero (look) or the caller's, which `sleeps` says is not zero. */
static int epoll_faults(int epfd, struct epoll_event *events, int max, int sleeps,
                        int (*wait)(int epfd, struct epoll_event *, int, int look, void *),
                        void *arg) {
    if (sleeps && inject(EINTR_WAIT)) {
        count(EINTR_WAIT);
        errno = EINTR;
        return -1;
    }
    struct epoll_event extra;
    int fd;
    if (max > 0 && inject(SPURIOUS) && (fd = spurious_epoll_event(epfd, &extra)) >= 0) {
        int n = wait(epfd, events, max, 1, arg);
        if (n < 0 || n >= max)
            return n;
        for (int i = 0; i < n; i++)
            if (events[i].data.u64 == extra.data.u64)
                return n; /* a real event for it came: nothing spurious to add */
        events[n] = extra;
        count_spurious(fd, extra.events & EPOLLOUT);
        return n + 1;
    }
    return wait(epfd, events, max, 0, arg);
}

static int real_epoll_wait_look(int epfd, struct epoll_event *ev, int max, int look, void *arg) {
    return real_epoll_wait()(epfd, ev, max, look ? 0 : *(int *)arg);
}

int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout) {
    return epoll_faults(epfd, events, max, may_sleep_ms(timeout), real_epoll_wait_look, &timeout);
}

struct pwait2_args {
    const struct timespec *timeout;
    const sigset_t *mask;
    size_t mask_size;
};

static int real_pwait2_look(int epfd, struct epoll_event *ev, int max, int look, void *arg) {
    struct pwait2_args *a = arg;
    static const struct timespec zero = {0, 0};
    return (int)real_syscall()(SYS_epoll_pwait2, epfd, ev, max, look ? &zero : a->timeout,
                               a->mask, a->mask_size);
}

/* Forwards six argument words whatever the call takes, as glibc's own
 * syscall(2) does: the kernel ignores the words a call does not use. Reading
 * words the caller did not pass is outside what C promises, but safe on the
 * two ABIs this runs on. On aarch64 the number and all six words travel in
 * x0-x7, so the extra ones are leftover registers. On x86-64 only six
 * integer arguments travel in registers (rdi, rsi, rdx, rcx, r8, r9: the
 * number and a1-a5); a6 is the caller's stack word just above the return
 * address (va_arg takes it from the overflow area), which is there and
 * mapped whatever the caller passed, since it is part of the caller's
 * frame; glibc's wrapper loads the same word into r9 (movq 8(%rsp), %r9).
 * Other ABIs would need a table of argument counts. */
long syscall(long number, ...) {
    va_list ap;
    va_start(ap, number);
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
    long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
    va_end(ap);
    if (number == SYS_epoll_pwait2) {
        struct pwait2_args args = {(const struct timespec *)a4, (const sigset_t *)a5, (size_t)a6};
        return epoll_faults((int)a1, (struct epoll_event *)a2, (int)a3, may_sleep_ts(args.timeout),
                            real_pwait2_look, &args);
    }
    if (number == SYS_pidfd_open && inject(NO_PIDFD)) {
        count(NO_PIDFD);
        errno = ENOSYS;
        return -1;
    }
    return real_syscall()(number, a1, a2, a3, a4, a5, a6);
}

/* poll and ppoll alike: look first; add a spurious event to an entry whose
 * requested direction is not ready; if there is none and nothing is ready,
 * wait as asked. */
static int poll_faults(struct pollfd *fds, nfds_t nfds, int sleeps,
                       int (*wait)(struct pollfd *, nfds_t, int look, void *), void *arg) {
    if (sleeps && inject(EINTR_WAIT)) {
        count(EINTR_WAIT);
        errno = EINTR;
        return -1;
    }
    if (nfds > 0 && inject(SPURIOUS)) {
        int n = wait(fds, nfds, 1, arg);
        if (n < 0)
            return n;
        nfds_t start = (nfds_t)(next_random() % nfds);
        for (nfds_t i = 0; i < nfds; i++) {
            struct pollfd *p = &fds[(start + i) % nfds];
            short idle = p->events & (POLLIN | POLLOUT) & ~p->revents;
            if (p->fd < 0 || !idle || (p->revents & (POLLERR | POLLHUP | POLLNVAL)))
                continue;
            if (idle == (POLLIN | POLLOUT))
                idle = (next_random() & 1) ? POLLIN : POLLOUT;
            if (!p->revents)
                n++;
            p->revents |= idle;
            count_spurious(p->fd, idle & POLLOUT);
            return n;
        }
        if (n > 0)
            return n;
    }
    return wait(fds, nfds, 0, arg);
}

static int real_poll_look(struct pollfd *fds, nfds_t nfds, int look, void *arg) {
    return real_poll()(fds, nfds, look ? 0 : *(int *)arg);
}

int poll(struct pollfd *fds, nfds_t nfds, int timeout) {
    return poll_faults(fds, nfds, may_sleep_ms(timeout), real_poll_look, &timeout);
}

struct ppoll_args {
    const struct timespec *timeout;
    const sigset_t *mask;
};

static int real_ppoll_look(struct pollfd *fds, nfds_t nfds, int look, void *arg) {
    struct ppoll_args *a = arg;
    static const struct timespec zero = {0, 0};
    return real_ppoll()(fds, nfds, look ? &zero : a->timeout, a->mask);
}

int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *mask) {
    struct ppoll_args args = {timeout, mask};
    return poll_faults(fds, nfds, may_sleep_ts(timeout), real_ppoll_look, &args);
}

int pselect(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
            const struct timespec *timeout, const sigset_t *mask) {
    if (may_sleep_ts(timeout) && inject(EINTR_WAIT)) {
        count(EINTR_WAIT);
        errno = EINTR;
        return -1;
    }
    if (nfds > 0 && (readfds || writefds) && inject(SPURIOUS)) {
        fd_set asked_r, asked_w, asked_e;
        if (readfds)
            asked_r = *readfds;
        if (writefds)
            asked_w = *writefds;
        if (exceptfds)
            asked_e = *exceptfds;
        static const struct timespec zero = {0, 0};
        int n = real_pselect()(nfds, readfds, writefds, exceptfds, &zero, mask);
        if (n < 0)
            return n;
        int start = (int)(next_random() % (uint64_t)nfds);
        for (int i = 0; i < 2 * nfds; i++) {
            int fd = (start + i / 2) % nfds;
            int want_write = i & 1;
            fd_set *asked = want_write ? &asked_w : &asked_r;
            fd_set *got = want_write ? writefds : readfds;
            if (!got || !FD_ISSET(fd, asked) || FD_ISSET(fd, got))
                continue;
            FD_SET(fd, got);
            count_spurious(fd, want_write);
            return n + 1;
        }
        if (n > 0)
            return n;
        if (readfds)
            *readfds = asked_r;
        if (writefds)
            *writefds = asked_w;
        if (exceptfds)
            *exceptfds = asked_e;
    }
    return real_pselect()(nfds, readfds, writefds, exceptfds, timeout, mask);
}

/* ---- sockets ------------------------------------------------------------ */

/* `option` of socket `fd`, or -1 (not a socket); errno is left as it was. */
static int socket_option(int fd, int option) {
    int value = 0, saved = errno;
    socklen_t len = sizeof value;
    if (getsockopt(fd, SOL_SOCKET, option, &value, &len) < 0)
        value = -1;
    errno = saved;
    return value;
}

/* Whether `fd` is a stream socket: asked before a draw, so that the
 * eligible counts hold only the calls that could get the fault. */
static int is_stream(int fd) { return socket_option(fd, SO_TYPE) == SOCK_STREAM; }

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    if (inject(ACCEPT_ERROR)) {
        static const int errors[] = {ECONNABORTED, EPROTO, EMFILE, ENOBUFS};
        count(ACCEPT_ERROR);
        errno = errors[next_random() % 4];
        return -1;
    }
    int conn = real_accept4()(fd, addr, len, flags);
    if (conn >= 0 && is_stream(conn) && inject(SMALL_SNDBUF)) {
        int size = SMALL_SNDBUF_BYTES, saved = errno;
        if (setsockopt(conn, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) == 0)
            count(SMALL_SNDBUF);
        errno = saved;
    }
    return conn;
}

static ssize_t send_faults(int fd, const void *buf, size_t len, int flags) {
    if (len > 1 && is_stream(fd) && inject(SHORT_WRITE)) {
        count(SHORT_WRITE);
        return real_send()(fd, buf, 1, flags);
    }
    return real_send()(fd, buf, len, flags);
}

ssize_t send(int fd, const void *buf, size_t len, int flags) {
    int followed = take_write_pending(fd);
    ssize_t res = send_faults(fd, buf, len, flags);
    if (followed)
        count_send_after_writable(res, errno);
    return res;
}

static ssize_t sendmsg_faults(int fd, const struct msghdr *msg, int flags) {
    size_t total = 0;
    for (size_t i = 0; i < msg->msg_iovlen; i++)
        total += msg->msg_iov[i].iov_len;
    if (total > 1 && is_stream(fd) && inject(SHORT_WRITE)) {
        struct msghdr one = *msg;
        struct iovec first = {0};
        for (size_t i = 0; i < msg->msg_iovlen; i++)
            if (msg->msg_iov[i].iov_len > 0) {
                first.iov_base = msg->msg_iov[i].iov_base;
                first.iov_len = 1;
                break;
            }
        one.msg_iov = &first;
        one.msg_iovlen = 1;
        count(SHORT_WRITE);
        return real_sendmsg()(fd, &one, flags);
    }
    return real_sendmsg()(fd, msg, flags);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    int followed = take_write_pending(fd);
    ssize_t res = sendmsg_faults(fd, msg, flags);
    if (followed)
        count_send_after_writable(res, errno);
    return res;
}

/* ---- epoll registrations ------------------------------------------------ */

int epoll_create1(int flags) {
    int fd = real_epoll_create1()(flags);
    if (fd >= 0 && fd < TABLE) {
        pthread_mutex_lock(&table_lock);
        is_epfd[fd] = 1;
        pthread_mutex_unlock(&table_lock);
    }
    return fd;
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event) {
    if (op == EPOLL_CTL_ADD && is_stream(fd) && socket_option(fd, SO_ACCEPTCONN) == 0 &&
        inject(CTL_ERROR)) {
        count(CTL_ERROR);
        errno = (next_random() & 1) ? ENOMEM : ENOSPC;
        return -1;
    }
    int res = real_epoll_ctl()(epfd, op, fd, event);
    if (res == 0 && fd >= 0 && fd < TABLE) {
        pthread_mutex_lock(&table_lock);
        if (op == EPOLL_CTL_DEL) {
            if (table[fd].epfd == epfd)
                table[fd].epfd = -1;
        } else if (event) {
            table[fd].epfd = epfd;
            table[fd].events = event->events;
            table[fd].data = event->data.u64;
            if (fd > max_fd)
                max_fd = fd;
        }
        pthread_mutex_unlock(&table_lock);
    }
    return res;
}

int close(int fd) {
    forget_fd(fd);
    return real_close()(fd);
}
