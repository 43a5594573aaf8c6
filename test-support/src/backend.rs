//! Which selector backend this process's reactors use, and which ones a
//! test that runs per backend should cover.

/// The variable tarn-selector reads to pick a backend (`epoll`, `poll` or
/// `select`); a child process inherits it.
pub const SELECTOR_ENV: &str = "TARN_SELECTOR";

/// Set in a child that re-runs a test binary on another backend, so that
/// the child does not re-run itself in turn.
pub(crate) const BACKEND_CHILD_ENV: &str = "TARN_TEST_BACKEND_CHILD";

/// The backend this process's reactors use: [`SELECTOR_ENV`] in lower case,
/// or `"epoll"` (the default on Linux) when it is unset or empty.
pub fn backend_name() -> String {
    chosen_backend().unwrap_or_else(|| "epoll".into())
}

/// The backends a test that runs once per backend covers: the one
/// [`SELECTOR_ENV`] names if it is set, else epoll, poll and select.
pub fn backends() -> Vec<String> {
    match chosen_backend() {
        Some(backend) => vec![backend],
        None => ["epoll", "poll", "select"].map(String::from).to_vec(),
    }
}

/// Whether this process is a test binary re-run on another backend by
/// [`rerun_on_poll_and_select`](crate::rerun_on_poll_and_select) (or one
/// backend's child of
/// [`isolated_on_each_backend`](crate::isolated_on_each_backend)): a test
/// with nothing backend-specific in it can return at once there.
pub fn is_backend_child() -> bool {
    std::env::var_os(BACKEND_CHILD_ENV).is_some()
}

fn chosen_backend() -> Option<String> {
    std::env::var(SELECTOR_ENV)
        .ok()
        .filter(|name| !name.is_empty())
        .map(|name| name.to_ascii_lowercase())
}
