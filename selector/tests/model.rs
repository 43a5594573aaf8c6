//! A model-based property test of the selector: random sequences of
//! register / modify / deregister / write / read / select over a few Unix
//! socket pairs, each step checked against a small reference model of what
//! the kernel should report.
//!
//! Side `a` of each pair is what the selector watches; side `b` is the peer
//! the test writes into, so `a` becomes readable. A Unix stream holding a few
//! bytes is always writable, and the test never closes anything, so the
//! model needs only one bit of kernel state per pair (is data pending?) and
//! `error`, `read_closed`, `write_closed` and `priority` must never appear.
//!
//! The model's reporting rules, per [`Mode`]:
//!
//! - **Level**: every `select` reports the readiness the registration asks
//!   for — readable while data is pending, writable always.
//! - **Oneshot**: the same, but only once after `register` or `modify`; after
//!   reporting (even one direction) it is silent until `modify` re-arms it. A
//!   `select` that finds nothing ready leaves it armed.
//! - **Edge** (epoll only; every other backend must refuse it with
//!   `Unsupported`): `register`, `modify` and a write into the peer
//!   *trigger* the registration, and the next `select` reports the whole
//!   current readiness it asks for, or nothing if that is empty; either way
//!   the trigger is used up. A write triggers only registrations that ask for
//!   `READABLE` or `PRIORITY`: the kernel's data-arrival wakeup carries
//!   `EPOLLIN | EPOLLPRI`, and epoll drops wakeups whose flags a registration
//!   does not ask for, so a write-only registration never hears of incoming
//!   data (and, for `WRITABLE | PRIORITY`, is re-told it is writable).
//!
//! Some cases select into an [`Events`] buffer smaller than what is due: the
//! selector must then fill it with due events (which ones is its choice) and
//! keep the rest due — Oneshot still armed, Edge still triggered — for a
//! later `select`.
//!
//! Errors are modelled too: an empty interest is `InvalidInput`, Edge off
//! epoll is `Unsupported`, registering twice is `AlreadyExists`, modifying or
//! deregistering an unregistered fd is `NotFound`. When several apply, any of
//! them is accepted; a failed call must change nothing. After every step,
//! `registrations()` must list exactly what the model holds.
//!
//! `PROPTEST_CASES` raises the case count for a longer soak.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tarn_selector::{Backend, Events, Interest, Mode, Registration, Selector, Token};

/// How many socket pairs each case plays with.
const PAIRS: usize = 4;
/// Tokens per pair a register or modify may choose from (so that `modify`
/// changing the token is exercised).
const TOKENS_PER_PAIR: usize = 3;
/// The longest operation sequence tried.
const MAX_OPS: usize = 40;
/// Cases per backend unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 256;

/// One step of a test case.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Register(usize, Token, Interest, Mode),
    Modify(usize, Token, Interest, Mode),
    Deregister(usize),
    /// Write a few bytes into pair `i`'s peer: `a` becomes readable.
    Write(usize),
    /// Drain pair `i`'s `a` side (non-blocking).
    Read(usize),
    /// `select` with a zero timeout, checked against the model.
    Select,
}

impl fmt::Debug for Op {
    /// Short, so that a shrunk failing sequence reads like a script.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Register(i, t, int, m) => write!(f, "Register({i}, {}, {int:?}, {m:?})", t.0),
            Op::Modify(i, t, int, m) => write!(f, "Modify({i}, {}, {int:?}, {m:?})", t.0),
            Op::Deregister(i) => write!(f, "Deregister({i})"),
            Op::Write(i) => write!(f, "Write({i})"),
            Op::Read(i) => write!(f, "Read({i})"),
            Op::Select => write!(f, "Select"),
        }
    }
}

/// What one reported event is compared on: (token, readable, writable).
type Seen = (Token, bool, bool);

/// The reference model's view of one registration.
#[derive(Clone, Copy, Debug)]
struct ModelRegistration {
    token: Token,
    interest: Interest,
    mode: Mode,
    /// Oneshot: may still report. Edge: triggered since the last `select`.
    /// Unused for Level.
    armed: bool,
}

/// The reference model: the backend under test, and per pair whether data
/// is pending on `a` and how `a` is registered.
#[derive(Debug)]
struct Model {
    backend: Backend,
    pending: [bool; PAIRS],
    registered: [Option<ModelRegistration>; PAIRS],
}

impl Model {
    fn new(backend: Backend) -> Model {
        Model {
            backend,
            pending: [false; PAIRS],
            registered: [None; PAIRS],
        }
    }

    /// The argument errors `register` and `modify` may give before looking
    /// at the fd.
    fn argument_errors(&self, interest: Interest, mode: Mode) -> Vec<io::ErrorKind> {
        let mut kinds = Vec::new();
        if interest.is_empty() {
            kinds.push(io::ErrorKind::InvalidInput);
        }
        if mode == Mode::Edge && self.backend != Backend::Epoll {
            kinds.push(io::ErrorKind::Unsupported);
        }
        kinds
    }

    /// Applies `register` and returns the error kinds it may fail with
    /// (empty: it must succeed).
    fn register(
        &mut self,
        i: usize,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> Vec<io::ErrorKind> {
        let mut kinds = self.argument_errors(interest, mode);
        if self.registered[i].is_some() {
            kinds.push(io::ErrorKind::AlreadyExists);
        }
        if kinds.is_empty() {
            self.registered[i] = Some(ModelRegistration {
                token,
                interest,
                mode,
                armed: true,
            });
        }
        kinds
    }

    /// Applies `modify`, which replaces the registration and re-arms or
    /// re-triggers it.
    fn modify(
        &mut self,
        i: usize,
        token: Token,
        interest: Interest,
        mode: Mode,
    ) -> Vec<io::ErrorKind> {
        let mut kinds = self.argument_errors(interest, mode);
        if self.registered[i].is_none() {
            kinds.push(io::ErrorKind::NotFound);
        }
        if kinds.is_empty() {
            self.registered[i] = Some(ModelRegistration {
                token,
                interest,
                mode,
                armed: true,
            });
        }
        kinds
    }

    fn deregister(&mut self, i: usize) -> Vec<io::ErrorKind> {
        match self.registered[i].take() {
            Some(_) => Vec::new(),
            None => vec![io::ErrorKind::NotFound],
        }
    }

    fn write(&mut self, i: usize) {
        self.pending[i] = true;
        if let Some(r) = &mut self.registered[i] {
            // The data-arrival wakeup carries EPOLLIN | EPOLLPRI; epoll
            // ignores it for registrations that ask for neither.
            if r.mode == Mode::Edge && (r.interest.is_readable() || r.interest.is_priority()) {
                r.armed = true;
            }
        }
    }

    fn read(&mut self, i: usize) {
        self.pending[i] = false;
    }

    /// What a zero-timeout `select` may report: one event per registration
    /// that is due, sorted.
    fn due(&self) -> Vec<Seen> {
        let mut due: Vec<Seen> = (0..PAIRS)
            .filter_map(|i| {
                let r = self.registered[i]?;
                let readable = r.interest.is_readable() && self.pending[i];
                let writable = r.interest.is_writable();
                let armed = r.mode == Mode::Level || r.armed;
                (armed && (readable || writable)).then_some((r.token, readable, writable))
            })
            .collect();
        due.sort();
        due
    }

    /// Checks what a zero-timeout `select` into a buffer of `capacity`
    /// events reported (sorted), then applies it.
    ///
    /// With room for everything, `seen` must be exactly what is due. With
    /// less, it must be as many due events as fit, in full: which ones is the
    /// backend's choice, and the ones left out stay due (a small buffer loses
    /// nothing). Reporting disarms a Oneshot registration and uses up an
    /// Edge trigger; a trigger that finds nothing ready is used up too.
    fn select(&mut self, seen: &[Seen], capacity: usize) -> Result<(), String> {
        let due = self.due();
        let fits = seen.len() == due.len().min(capacity);
        let unique = seen.windows(2).all(|w| w[0].0 != w[1].0);
        if !fits || !unique || !seen.iter().all(|s| due.contains(s)) {
            return Err(format!(
                "select reported {seen:?}, but the model had {due:?} due \
                 (buffer of {capacity}); model {self:?}"
            ));
        }
        for r in self.registered.iter_mut().flatten() {
            let reported = seen.iter().any(|s| s.0 == r.token);
            let left_out = due.iter().any(|s| s.0 == r.token) && !reported;
            match r.mode {
                Mode::Level => {}
                Mode::Oneshot => r.armed &= !reported,
                Mode::Edge => r.armed = left_out,
            }
        }
        Ok(())
    }

    /// What `registrations()` must list, given each pair's `a` fd.
    fn registrations(&self, fds: &[RawFd; PAIRS]) -> Vec<Registration> {
        let mut list: Vec<Registration> = (0..PAIRS)
            .filter_map(|i| {
                self.registered[i].map(|r| Registration {
                    fd: fds[i],
                    token: r.token,
                    interest: r.interest,
                    mode: r.mode,
                })
            })
            .collect();
        list.sort_by_key(|r| r.fd);
        list
    }
}

/// Checks that a selector call's result is one the model allows.
fn check_result(
    step: usize,
    op: Op,
    result: io::Result<()>,
    allowed: &[io::ErrorKind],
) -> Result<(), TestCaseError> {
    match (result, allowed.is_empty()) {
        (Ok(()), true) => Ok(()),
        (Ok(()), false) => Err(TestCaseError::fail(format!(
            "step {step}: {op:?} succeeded, but the model expected one of {allowed:?}"
        ))),
        (Err(e), _) if allowed.contains(&e.kind()) => Ok(()),
        (Err(e), _) => Err(TestCaseError::fail(format!(
            "step {step}: {op:?} failed with {:?} ({e}), but the model expected {}",
            e.kind(),
            if allowed.is_empty() {
                "success".to_string()
            } else {
                format!("one of {allowed:?}")
            }
        ))),
    }
}

/// Runs one operation sequence on a fresh selector and fresh socket pairs,
/// selecting into a buffer of `capacity` events, and compares every step
/// with the model.
fn run_case(backend: Backend, capacity: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let selector = Selector::with_backend(backend).expect("create selector");
    let mut pairs: Vec<(UnixStream, UnixStream)> = (0..PAIRS)
        .map(|_| {
            let (a, b) = UnixStream::pair().expect("socketpair");
            a.set_nonblocking(true).expect("set a non-blocking");
            (a, b)
        })
        .collect();
    let fds: [RawFd; PAIRS] = std::array::from_fn(|i| pairs[i].0.as_raw_fd());
    let mut model = Model::new(backend);
    let mut events = Events::with_capacity(capacity);

    for (step, &op) in ops.iter().enumerate() {
        match op {
            Op::Register(i, token, interest, mode) => {
                let allowed = model.register(i, token, interest, mode);
                check_result(
                    step,
                    op,
                    selector.register(fds[i], token, interest, mode),
                    &allowed,
                )?;
            }
            Op::Modify(i, token, interest, mode) => {
                let allowed = model.modify(i, token, interest, mode);
                check_result(
                    step,
                    op,
                    selector.modify(fds[i], token, interest, mode),
                    &allowed,
                )?;
            }
            Op::Deregister(i) => {
                let allowed = model.deregister(i);
                check_result(step, op, selector.deregister(fds[i]), &allowed)?;
            }
            Op::Write(i) => {
                pairs[i].1.write_all(b"tarn").expect("write into the peer");
                model.write(i);
            }
            Op::Read(i) => {
                let mut buf = [0u8; 256];
                loop {
                    match pairs[i].0.read(&mut buf) {
                        Ok(0) => panic!("unexpected end of stream on pair {i}"),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("read from pair {i}: {e}"),
                    }
                }
                model.read(i);
            }
            Op::Select => {
                let n = selector
                    .select(&mut events, Some(Duration::ZERO))
                    .expect("select");
                prop_assert_eq!(n, events.len(), "step {}: select's count", step);
                for event in &events {
                    prop_assert!(
                        !event.error()
                            && !event.read_closed()
                            && !event.write_closed()
                            && !event.priority(),
                        "step {}: unexpected flags in {:?}",
                        step,
                        event
                    );
                }
                let mut seen: Vec<Seen> = events
                    .iter()
                    .map(|e| (e.token(), e.readable(), e.writable()))
                    .collect();
                seen.sort();
                if let Err(why) = model.select(&seen, events.capacity()) {
                    return Err(TestCaseError::fail(format!("step {step}: {why}")));
                }
            }
        }
        prop_assert_eq!(
            selector.registrations(),
            model.registrations(&fds),
            "step {}: registrations() after {:?}",
            step,
            op
        );
    }
    Ok(())
}

fn interest() -> impl Strategy<Value = Interest> {
    let directions = (1u8..8).prop_map(|bits| {
        let mut interest = Interest::NONE;
        for (bit, direction) in [
            (1, Interest::READABLE),
            (2, Interest::WRITABLE),
            (4, Interest::PRIORITY),
        ] {
            if bits & bit != 0 {
                interest |= direction;
            }
        }
        interest
    });
    prop_oneof![1 => Just(Interest::NONE), 14 => directions]
}

fn mode(backend: Backend) -> impl Strategy<Value = Mode> {
    // Off epoll, Edge only has to be refused: try it less often.
    let edge = if backend == Backend::Epoll { 2 } else { 1 };
    prop_oneof![2 => Just(Mode::Level), 2 => Just(Mode::Oneshot), edge => Just(Mode::Edge)]
}

fn op(backend: Backend) -> impl Strategy<Value = Op> {
    let pair = 0..PAIRS;
    let token = |i: usize, t: usize| Token(i * 10 + t);
    prop_oneof![
        3 => (pair.clone(), 0..TOKENS_PER_PAIR, interest(), mode(backend))
            .prop_map(move |(i, t, int, m)| Op::Register(i, token(i, t), int, m)),
        3 => (pair.clone(), 0..TOKENS_PER_PAIR, interest(), mode(backend))
            .prop_map(move |(i, t, int, m)| Op::Modify(i, token(i, t), int, m)),
        1 => pair.clone().prop_map(Op::Deregister),
        3 => pair.clone().prop_map(Op::Write),
        2 => pair.prop_map(Op::Read),
        5 => Just(Op::Select),
    ]
}

/// Runs the property for one backend and panics with the shrunk failing
/// sequence if the selector and the model ever disagree.
fn check_backend(backend: Backend) {
    let defaults = Config::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        defaults.cases
    } else {
        // Fewer under .ci/valgrind.sh: there every case runs 30 to 50
        // times slower.
        tarn_test_support::native_or_valgrind(CASES, 16)
    };
    let config = Config {
        cases,
        // Shrinking is cheap here and a short failing script is worth it.
        max_shrink_iters: 4096,
        // Failures are reported in full; no regression files in the tree.
        failure_persistence: None,
        ..defaults
    };
    let mut runner = TestRunner::new(config);
    // Mostly a buffer with room for every pair; sometimes one too small, to
    // check that what does not fit is reported later rather than lost.
    let capacity = prop_oneof![3 => Just(PAIRS), 1 => 1..PAIRS];
    let ops = prop::collection::vec(op(backend), 1..=MAX_OPS);
    if let Err(e) = runner.run(&(capacity, ops), |(capacity, ops)| {
        run_case(backend, capacity, &ops)
    }) {
        panic!("{backend} backend disagrees with the model: {e}");
    }
}

/// One test per backend, so that a failure names its backend.
macro_rules! model_test {
    ($(#[$attr:meta])* $name:ident, $backend:expr) => {
        $(#[$attr])*
        #[test]
        fn $name() {
            check_backend($backend);
        }
    };
}

model_test!(
    #[cfg(any(target_os = "linux", target_os = "android"))]
    epoll_matches_the_model,
    Backend::Epoll
);
model_test!(poll_matches_the_model, Backend::Poll);
model_test!(select_matches_the_model, Backend::Select);

#[test]
fn every_backend_has_a_model_test() {
    let tested = [
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Backend::Epoll,
        Backend::Poll,
        Backend::Select,
    ];
    for backend in Backend::ALL {
        assert!(
            tested.contains(backend),
            "no model test for the {backend} backend: add a model_test! line"
        );
    }
}
