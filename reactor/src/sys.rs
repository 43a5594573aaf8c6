//! The reactor's few direct system calls: making an fd non-blocking, and
//! asking the kernel whether an fd is ready right now. Each goes through
//! tarn-selector's `syscall!`, which does the `unsafe` call and the errno
//! check.

use std::io;
use std::os::fd::RawFd;

use tarn_selector::syscall;

/// Sets `O_NONBLOCK` on `fd`.
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL read and write the status flags of an fd the
    // caller borrows for the duration of the call; no pointers involved.
    let flags = unsafe { syscall!(fcntl(fd, libc::F_GETFL)) }?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        unsafe { syscall!(fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK)) }?;
    }
    Ok(())
}

/// Whether a read (`write == false`) or a write on `fd` would not block now:
/// a zero-timeout `poll(2)`. Hangups and errors count as ready, since the
/// operation would then return at once.
pub(crate) fn ready_now(fd: RawFd, write: bool) -> io::Result<bool> {
    let events = if write {
        libc::POLLOUT
    } else {
        libc::POLLIN | libc::POLLRDHUP
    };
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is one valid pollfd, alive for the call.
        match unsafe { syscall!(poll(&mut pfd, 1, 0)) } {
            Ok(_) => return Ok(pfd.revents != 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Asks the kernel not to let this thread preempt others when it wakes
/// (`SCHED_BATCH`, same share of CPU). For the fallback thread: woken by
/// nearly every I/O event, it would otherwise interrupt the executor thread
/// it serves once per event; as a batch thread it runs when that thread
/// blocks and handles the events that arrived meanwhile together. Best
/// effort: an error leaves the thread as it was.
pub(crate) fn batch_scheduling() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: sched_param is plain data; pid 0 names the calling
        // thread, and SCHED_BATCH takes priority 0.
        let param = unsafe { std::mem::zeroed::<libc::sched_param>() };
        // SAFETY: valid arguments; failure only leaves the policy unchanged.
        let _ = unsafe { syscall!(sched_setscheduler(0, libc::SCHED_BATCH, &param)) };
    }
}

/// The timer slack a thread gets once it sleeps in the reactor until a
/// timer: 20 µs instead of Linux's default 50 µs.
///
/// Linux lets a sleep with a timeout (epoll_wait, poll, select) end up to
/// the thread's slack late, so that wakeups can be batched. At 50 µs a 1 ms
/// sleep overshot by ~90 µs in the executor benchmark (the slack plus the
/// wakeup itself); at 20 µs by ~55 µs. 1 µs brought it to ~35 µs but cost
/// 25% more CPU with 100k timers due within 100 ms, because every timer
/// then got a wakeup of its own; 20 µs still batches those.
pub(crate) const TIMER_SLACK_NS: u64 = 20_000;

thread_local! {
    static SLACK_SET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Sets this thread's timer slack to [`TIMER_SLACK_NS`], once per thread
/// (it stays so: a thread that runs tarn's loop keeps the slack after its
/// `block_on` returns). Best effort: an error leaves the slack as it was.
pub(crate) fn precise_timers() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let _ = SLACK_SET.try_with(|set| {
            if !set.replace(true) {
                // SAFETY: PR_SET_TIMERSLACK takes one unsigned long and
                // changes only the calling thread's slack.
                let _ = unsafe {
                    syscall!(prctl(
                        libc::PR_SET_TIMERSLACK,
                        TIMER_SLACK_NS as libc::c_ulong,
                        0,
                        0,
                        0
                    ))
                };
            }
        });
    }
}
