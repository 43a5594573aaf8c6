//! Syscall fault injection: the `LD_PRELOAD` interposer in
//! `faults/interposer.c` (its header says what each fault does and what
//! it leaves alone), built on first use with the system's C compiler, and
//! [`isolated_under_faults`], which runs a test alone in a child process
//! under it.
//!
//! A fault schedule is a [`FAULTS_ENV`] spec with a rate per fault and a
//! [`FAULT_SEED_ENV`] seed. The parent prints the seed it chose; setting
//! the variable replays the schedule of each thread's draws (its
//! n-th eligible call gets the same fault), not the interleaving: which
//! calls a thread makes depends on timing, so a replay injects about the
//! same number of each fault, not the same faults at the same moments.

use std::ffi::CStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::backend::{backends, BACKEND_CHILD_ENV, SELECTOR_ENV};
use crate::data::{fnv1a, FNV_START};
use crate::rerun::{check_one_test, run, test_binary, ISOLATED_ENV};
use crate::watchdog::watchdog;

/// The interposer's schedule: `"eintr=0.05,spurious=0.1,short=0.2,..."`.
pub const FAULTS_ENV: &str = "TARN_FAULTS";

/// The seed of the interposer's schedule; [`isolated_under_faults`] picks
/// one from the clock unless it is set.
pub const FAULT_SEED_ENV: &str = "TARN_FAULT_SEED";

/// The interposer's source, compiled into the test-support crate so that a
/// test binary can build it wherever it runs.
const SOURCE: &str = include_str!("../faults/interposer.c");

/// The faults the interposer knows, in the order of its counters.
pub const FAULT_NAMES: [&str; 7] = [
    "eintr", "spurious", "short", "accept", "ctl", "pidfd", "sndbuf",
];

/// What the interposer did in this process so far: per fault (in the order
/// of [`FAULT_NAMES`]), the calls that could have had it and the calls that
/// had it, and the spurious events in detail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Injected {
    /// Eligible calls, per fault.
    pub eligible: [u64; 7],
    /// Calls that got the fault, per fault.
    pub injected: [u64; 7],
    /// The spurious events by direction, and what followed the writable
    /// ones.
    pub spurious: Spurious,
}

/// The spurious events the interposer injected, by direction (they add up
/// to the `spurious` count), and what the next `send` or `sendmsg` on the
/// fd of a writable one got. A writable event in neither `then` count had
/// no send after it: its fd was closed first, or the send failed otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spurious {
    /// Readable events for an fd with nothing to read.
    pub readable: u64,
    /// Writable events for an fd whose send buffer was full.
    pub writable: u64,
    /// Writable events whose next send got `EAGAIN`: the lie was seen.
    pub writable_then_eagain: u64,
    /// Writable events whose next send sent bytes: the peer had read, and
    /// the fd became writable, before the writer came.
    pub writable_then_sent: u64,
}

impl Spurious {
    /// The interposer's counters, in its order (interposer.c, `enum
    /// spurious_detail`).
    fn from_words(words: [u64; 4]) -> Spurious {
        let [readable, writable, writable_then_eagain, writable_then_sent] = words;
        Spurious {
            readable,
            writable,
            writable_then_eagain,
            writable_then_sent,
        }
    }
}

impl fmt::Display for Spurious {
    /// `12 readable, 5 writable (4 then EAGAIN, 1 then sent)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} readable, {} writable ({} then EAGAIN, {} then sent)",
            self.readable, self.writable, self.writable_then_eagain, self.writable_then_sent
        )
    }
}

impl Injected {
    /// How many times fault `name` (one of [`FAULT_NAMES`]) was injected.
    pub fn count(&self, name: &str) -> u64 {
        let i = FAULT_NAMES
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("unknown fault {name:?}; known: {FAULT_NAMES:?}"));
        self.injected[i]
    }
}

impl fmt::Display for Injected {
    /// `eintr 12/240, spurious 30/250, ...`: injected of eligible.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (i, name) in FAULT_NAMES.iter().enumerate() {
            if self.eligible[i] == 0 {
                continue;
            }
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{name} {}/{}", self.injected[i], self.eligible[i])?;
            if *name == "spurious" {
                write!(f, " [{}]", self.spurious)?;
            }
        }
        if first {
            f.write_str("no eligible calls")?;
        }
        Ok(())
    }
}

type CountsFn = unsafe extern "C" fn(*mut u64, *mut u64) -> libc::c_int;
type SpuriousFn = unsafe extern "C" fn(*mut u64) -> libc::c_int;
type EnableFn = unsafe extern "C" fn(libc::c_int);

/// The interposer's function `name` in this process, if it is loaded.
fn interposer_symbol(name: &CStr) -> Option<*mut libc::c_void> {
    // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the loaded
    // objects and returns null when nothing defines the symbol.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!f.is_null()).then_some(f)
}

/// What the interposer has injected in this process, or `None` if it is
/// not loaded here.
pub fn injected() -> Option<Injected> {
    let f = interposer_symbol(c"tarn_faults_counts")?;
    // SAFETY: the interposer defines `tarn_faults_counts` with this
    // signature (interposer.c).
    let counts: CountsFn = unsafe { std::mem::transmute::<*mut libc::c_void, CountsFn>(f) };
    let mut out = Injected::default();
    // SAFETY: both arrays hold the 7 counters the function writes.
    let n = unsafe { counts(out.eligible.as_mut_ptr(), out.injected.as_mut_ptr()) };
    assert_eq!(n, 7, "the interposer counts {n} faults, this crate knows 7");
    let f = interposer_symbol(c"tarn_faults_spurious").expect("tarn_faults_spurious");
    // SAFETY: the interposer defines `tarn_faults_spurious` with this
    // signature (interposer.c).
    let spurious: SpuriousFn = unsafe { std::mem::transmute::<*mut libc::c_void, SpuriousFn>(f) };
    let mut words = [0; 4];
    // SAFETY: the array holds the 4 counters the function writes.
    let n = unsafe { spurious(words.as_mut_ptr()) };
    assert_eq!(
        n, 4,
        "the interposer has {n} spurious counters, this crate knows 4"
    );
    out.spurious = Spurious::from_words(words);
    Some(out)
}

/// Turns the interposer's injection on or off for the whole process (a
/// no-op without it): off, to check that a server still serves once the
/// faults stop.
pub fn set_injecting(on: bool) {
    if let Some(f) = interposer_symbol(c"tarn_faults_enable") {
        // SAFETY: the interposer defines `tarn_faults_enable(int)`.
        let enable: EnableFn = unsafe { std::mem::transmute::<*mut libc::c_void, EnableFn>(f) };
        // SAFETY: a plain call with an int; it stores one atomic.
        unsafe { enable(libc::c_int::from(on)) };
    }
}

/// The interposer, built (once per process, and again only when its source
/// changes) into `target/<profile>/tarn-faults/` with `$CC` or `cc`.
/// Fails with the compiler's output if it does not build.
pub fn interposer_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(build_interposer).clone()
}

fn build_interposer() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/tarn-faults
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .join("tarn-faults");
    std::fs::create_dir_all(&dir).expect("create the interposer's directory");
    let hash = fnv1a(FNV_START, SOURCE.as_bytes());
    let lib = dir.join(format!("interposer-{hash:016x}.so"));
    if lib.exists() {
        return lib;
    }
    let pid = std::process::id();
    let source = dir.join(format!("interposer-{pid}.c"));
    let partial = dir.join(format!("interposer-{pid}.so.partial"));
    std::fs::write(&source, SOURCE).expect("write the interposer's source");
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let output = Command::new(&cc)
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
        ])
        .arg(&partial)
        .arg(&source)
        .args(["-ldl", "-pthread"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?} for the interposer: {e}"));
    let _ = std::fs::remove_file(&source);
    assert!(
        output.status.success(),
        "the fault interposer does not build with {cc:?} ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // A rename is atomic: a process that finds the library finds all of it.
    std::fs::rename(&partial, &lib).expect("move the interposer into place");
    lib
}

/// The variable that names the file a child's interposer keeps its
/// counters and switch in (see [`FaultyChild`]).
pub const FAULT_REPORT_ENV: &str = "TARN_FAULT_REPORT";

/// A child process to be run under the interposer (an example server):
/// [`apply`](Self::apply) it to the child's `Command`, then read what was
/// injected there and turn injection off from outside, through a file the
/// interposer maps shared. The file is removed when this is dropped.
#[derive(Debug)]
pub struct FaultyChild {
    report: PathBuf,
    seed: u64,
}

impl FaultyChild {
    /// A report file in the temp directory, and a seed ([`FAULT_SEED_ENV`]
    /// if set, else from the clock).
    pub fn new() -> FaultyChild {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("tarn-faults-{}-{n}.bin", std::process::id());
        FaultyChild {
            report: std::env::temp_dir().join(name),
            seed: seed(),
        }
    }

    /// Makes `command` run under the interposer with schedule `faults` (a
    /// [`FAULTS_ENV`] spec).
    pub fn apply(&self, command: &mut Command, faults: &str) {
        let _ = std::fs::remove_file(&self.report);
        command
            .env("LD_PRELOAD", interposer_path())
            .env(FAULTS_ENV, faults)
            .env(FAULT_SEED_ENV, self.seed.to_string())
            .env(FAULT_REPORT_ENV, &self.report);
    }

    /// The seed the child runs with: set [`FAULT_SEED_ENV`] to it to replay.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// What the child's interposer has injected so far (all zero before it
    /// has started).
    pub fn injected(&self) -> Injected {
        let mut out = Injected::default();
        let Ok(bytes) = std::fs::read(&self.report) else {
            return out;
        };
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|w| u64::from_ne_bytes(w.try_into().unwrap()))
            .collect();
        // Eligible, injected, the switch, then the spurious details.
        let n = FAULT_NAMES.len();
        if words.len() >= 2 * n + 5 {
            out.eligible.copy_from_slice(&words[..n]);
            out.injected.copy_from_slice(&words[n..2 * n]);
            let details = &words[2 * n + 1..2 * n + 5];
            out.spurious = Spurious::from_words(details.try_into().unwrap());
        }
        out
    }

    /// Turns injection in the child on or off.
    pub fn set_injecting(&self, on: bool) {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.report)
            .unwrap_or_else(|e| panic!("{}: {e}", self.report.display()));
        // The switch follows the eligible and injected counters.
        let at = 2 * 8 * FAULT_NAMES.len() as u64;
        file.write_all_at(&u64::from(on).to_ne_bytes(), at)
            .unwrap_or_else(|e| panic!("{}: {e}", self.report.display()));
    }
}

impl Default for FaultyChild {
    fn default() -> FaultyChild {
        FaultyChild::new()
    }
}

impl Drop for FaultyChild {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.report);
    }
}

/// The seed for a run: [`FAULT_SEED_ENV`] if set, else from the clock.
fn seed() -> u64 {
    match std::env::var(FAULT_SEED_ENV) {
        Ok(seed) if !seed.is_empty() => seed
            .parse()
            .unwrap_or_else(|_| panic!("{FAULT_SEED_ENV}={seed:?} is not a number")),
        _ => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            now.as_nanos() as u64 % 1_000_000_007
        }
    }
}

/// The faults of a `TARN_FAULTS` spec that have a rate above zero.
fn faults_on(spec: &str) -> Vec<&str> {
    spec.split(',')
        .filter_map(|part| part.split_once('='))
        .filter(|(_, rate)| rate.parse::<f64>().is_ok_and(|r| r > 0.0))
        .map(|(name, _)| name)
        .collect()
}

/// Runs `body` alone in a child process (this binary re-run with `--exact
/// test_name`) under the fault interposer with schedule `faults` (a
/// [`FAULTS_ENV`] spec), once per backend of [`backends`], each under a
/// [`watchdog`] of `patience`.
///
/// In the child, before `body`, it checks that the interposer is loaded;
/// after it, it prints what was injected and fails unless every fault the
/// spec turns on was injected at least once (except `ctl` on the poll and
/// select backends, which make no `epoll_ctl`). A failure names the seed
/// and backend that replay it. A spec whose only fault is `ctl` runs on
/// epoll alone.
pub fn isolated_under_faults(
    test_name: &str,
    faults: &str,
    patience: Duration,
    body: impl FnOnce(),
) {
    if std::env::var(ISOLATED_ENV).as_deref() == Ok(test_name) {
        let _watchdog = watchdog(test_name, patience);
        let spec = std::env::var(FAULTS_ENV).unwrap_or_default();
        assert!(
            injected().is_some(),
            "the fault interposer is not loaded in this process ({FAULTS_ENV}={spec:?})"
        );
        body();
        let injected = injected().expect("the interposer went away");
        crate::figure(format_args!(
            "faults [{}] {test_name}: injected/eligible: {injected}",
            crate::backend_name()
        ));
        let epoll = crate::backend_name() == "epoll";
        for fault in faults_on(&spec) {
            if fault == "ctl" && !epoll {
                continue;
            }
            assert!(
                injected.count(fault) > 0,
                "fault {fault} was never injected ({injected}): the test did not exercise it"
            );
        }
        return;
    }
    let lib = interposer_path();
    let seed = seed();
    let epoll_only = faults_on(faults).iter().all(|f| *f == "ctl");
    for backend in backends() {
        if epoll_only && backend != "epoll" {
            continue;
        }
        let output = run(test_binary()
            .env(SELECTOR_ENV, &backend)
            .env(BACKEND_CHILD_ENV, "1")
            .env(ISOLATED_ENV, test_name)
            .env("LD_PRELOAD", &lib)
            .env(FAULTS_ENV, faults)
            .env(FAULT_SEED_ENV, seed.to_string())
            .args(["--exact", test_name, "--test-threads", "1"]));
        check_one_test(
            &format!(
                "{test_name} under {FAULTS_ENV}={faults} (replay: {FAULT_SEED_ENV}={seed} \
                 {SELECTOR_ENV}={backend})"
            ),
            &output,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::faults_on;

    #[test]
    fn a_spec_turns_on_the_faults_with_a_rate_above_zero() {
        assert_eq!(
            faults_on("eintr=0.05,spurious=0,short=1,ctl=x"),
            ["eintr", "short"]
        );
        assert!(faults_on("").is_empty());
    }
}
