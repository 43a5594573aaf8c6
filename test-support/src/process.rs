//! What a process holds and uses, from `/proc` and `getrusage`: open fds,
//! resident and virtual memory, CPU time, threads. Each gauge of this
//! process has a twin that reads another process by its pid.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// The number of open fds of this process (counting the one that lists
/// them, which is the same before and after).
pub fn open_fds() -> usize {
    count_fds("self")
}

/// The number of open fds of this process that are not a selector's own
/// (an epoll instance or an eventfd, which `/proc` shows as
/// `anon_inode:[eventpoll]` and `anon_inode:[eventfd]`): what a leak check
/// of sockets and pipes counts while threads with reactors of their own
/// come and go, each reactor's fds closing as its thread ends, which may be
/// after the test that ran on it has finished.
pub fn open_io_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| {
            let target = target.to_string_lossy();
            target != "anon_inode:[eventpoll]" && target != "anon_inode:[eventfd]"
        })
        .count()
}

/// The number of open fds of process `pid`.
pub fn open_fds_of(pid: u32) -> usize {
    count_fds(&pid.to_string())
}

fn count_fds(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .count()
}

/// The open fds of this process by number, less the one that listed them.
pub fn open_fd_numbers() -> BTreeSet<RawFd> {
    let listed: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    listed
        .into_iter()
        // SAFETY: F_GETFD only reads flags; a closed fd gives -1.
        .filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } >= 0)
        .collect()
}

/// This process's resident memory (`VmRSS`), in KiB.
pub fn rss_kib() -> u64 {
    proc_status_kib("self", "VmRSS")
}

/// Process `pid`'s resident memory (`VmRSS`), in KiB.
pub fn rss_kib_of(pid: u32) -> u64 {
    proc_status_kib(&pid.to_string(), "VmRSS")
}

/// This process's virtual size (`VmSize`), in bytes.
pub fn virtual_size() -> u64 {
    proc_status_kib("self", "VmSize") * 1024
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmSize`, ...); `pid`
/// may be `"self"`.
fn proc_status_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The CPU time (user plus system, all threads) this process has used.
pub fn cpu_time() -> Duration {
    rusage_cpu_time(libc::RUSAGE_SELF)
}

/// The CPU time (user plus system) the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    rusage_cpu_time(libc::RUSAGE_THREAD)
}

fn rusage_cpu_time(who: libc::c_int) -> Duration {
    // SAFETY: rusage is plain data, valid when zeroed.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given.
    let res = unsafe { libc::getrusage(who, &mut usage) };
    assert_eq!(res, 0, "getrusage: {}", io::Error::last_os_error());
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The CPU time (user plus system, all threads) process `pid` has used.
pub fn cpu_time_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    // The fields after the command name, which is in parentheses: utime
    // and stime are the 12th and 13th of them, in clock ticks.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// The threads of this process named `name` (as `/proc` shows their
/// `comm`, at most 15 bytes).
pub fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter(|task| {
            let comm = task.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == name)
        })
        .count()
}
