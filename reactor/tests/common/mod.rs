//! What the reactor's integration tests share that needs the reactor
//! itself; everything else (re-runs on other backends, isolated tests,
//! watchdogs, sizes, fd counts, socket pairs, random data) comes from
//! `tarn-test-support`.
//!
//! Each test binary compiles its own copy of this module.

/// The (readers, writers) the reactors list as waiting on `fd`.
pub fn waiting_on(fd: i32) -> (usize, usize) {
    tarn_reactor::sources()
        .into_iter()
        .find(|s| s.fd == fd)
        .map_or((0, 0), |s| (s.readers, s.writers))
}
