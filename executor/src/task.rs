//! A spawned task in one heap allocation: a header (reference count,
//! scheduled flag, the executor's shared queue, bookkeeping), the join slot
//! its [`JoinHandle`](crate::JoinHandle) reads, and the future itself.
//!
//! The allocation is reached through type-erased pointers: the executor's
//! task table, queue entries, `Waker`s and the join handle each hold one
//! counted reference ([`TaskRef`]). A `Waker` is the task pointer with a
//! static vtable, so polling a task needs no waker allocation and no
//! reference-count traffic.
//!
//! Thread rules, on which every `unsafe` block below relies, and which the
//! header's types enforce:
//! - The future, the join slot and the header's [`LocalHeader`] are only
//!   touched on the executor's thread: reaching them takes an
//!   [`OnExecutor`] proof, which only a borrow of the executor's state or
//!   of a join handle (both `!Send` and `!Sync`) gives.
//! - Wakers (which are `Send`) touch only the [`SyncHeader`] (`refs`,
//!   `scheduled`, `shared`, `vtable`), which is checked to be `Sync`.
//! - When the last reference is dropped, possibly by a waker on another
//!   thread, the future has already been dropped in place and the join slot
//!   emptied, both on the executor's thread (the executor drops the future
//!   before releasing its reference; the join handle empties the slot before
//!   releasing its own, and a task whose handle is gone drops its output at
//!   once). Freeing then drops nothing of the task's types but the
//!   `Arc<Shared>`.

use std::cell::{Cell, UnsafeCell};
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::executor::{catch_task_panic, schedule, Job, Shared};
use crate::join::{JoinError, Outcome};
use crate::sync::{fence, Arc, AtomicBool, AtomicUsize};

/// The start of every task allocation, in two parts whose types say who
/// may touch them: [`SyncHeader`] from any thread (it is `Sync`, which is
/// checked below), [`LocalHeader`] only through an [`OnExecutor`] proof,
/// which exists only on the executor's thread.
#[repr(C)]
pub(crate) struct Header {
    sync: SyncHeader,
    local: ThreadBound<LocalHeader>,
}

/// What wakers touch, from any thread.
struct SyncHeader {
    refs: AtomicUsize,
    shared: Arc<Shared>,
    vtable: &'static TaskVTable,
    /// True from a wake until the task is next polled (repeated wakes queue
    /// the task once), and for good once its future is gone (wakes of a
    /// finished task queue nothing).
    scheduled: AtomicBool,
}

// A waker on another thread reaches the header through a shared
// reference: what it may touch must be `Sync`.
const _: () = {
    const fn assert_sync<T: Sync>() {}
    assert_sync::<SyncHeader>()
};

/// What only the executor's thread touches.
struct LocalHeader {
    /// The task's id, unique within its executor (see [`crate::TaskId`]).
    id: u64,
    /// The task's key in the executor's task table (which cannot hold
    /// 2^32 tasks: each has a heap allocation of 56 bytes and more).
    key: Cell<u32>,
    /// How many times the future has been polled (saturating; 0: never,
    /// and `last_poll` means nothing yet).
    polls: Cell<u32>,
    /// When it was last polled, in the executor's coarse clock
    /// (milliseconds since the executor was made, wrapping: differences
    /// are right for polls less than 49 days apart).
    last_poll: Cell<u32>,
    /// The future has not been dropped yet.
    alive: Cell<bool>,
    /// The future is being polled right now.
    polling: Cell<bool>,
    /// `abort` was called while the task was being polled.
    cancel: Cell<bool>,
    /// The join handle still exists.
    handle: Cell<bool>,
}

/// The proof that code runs on a task's executor thread, and what only it
/// reaches: in a module of its own, so that nothing else in this file can
/// make a proof (its fields are private) or open a [`ThreadBound`] without
/// one.
mod proof {
    use std::marker::PhantomData;
    use std::rc::Rc;

    /// A value that only code holding an [`OnExecutor`] proof can reach.
    pub(super) struct ThreadBound<T>(T);

    impl<T> ThreadBound<T> {
        pub(super) fn new(value: T) -> ThreadBound<T> {
            ThreadBound(value)
        }

        pub(super) fn get<'a>(&'a self, _on: OnExecutor<'a>) -> &'a T {
            &self.0
        }
    }

    /// Proof that the code holding it runs on the executor's thread: made
    /// only from a borrow of something that never leaves that thread (the
    /// executor's state, or a join handle), and itself neither `Send` nor
    /// `Sync`, so it cannot leave either. The thread-bound parts of a task
    /// (its `LocalHeader`, and through the functions that take this proof,
    /// its future and join slot) are reached only with it; wakers have
    /// none. It names its executor, and each use on a task checks (in debug
    /// builds) that the task is that executor's.
    #[derive(Clone, Copy)]
    pub(crate) struct OnExecutor<'a> {
        thread: PhantomData<&'a Rc<()>>,
        executor: usize,
    }

    impl<'a> OnExecutor<'a> {
        /// The proof an executor's own state gives: `Inner` holds `Rc`s
        /// and `RefCell`s, so a borrow of it is on the executor's thread.
        pub(crate) fn of(executor: &'a crate::executor::Inner) -> OnExecutor<'a> {
            OnExecutor {
                thread: PhantomData,
                executor: executor.id(),
            }
        }

        /// The proof a join handle gives (`handle`, `!Send` and `!Sync`,
        /// made on the executor's thread) for its task, of `executor`.
        pub(super) fn of_handle<T>(
            _handle: &'a super::Handle<T>,
            executor: usize,
        ) -> OnExecutor<'a> {
            OnExecutor {
                thread: PhantomData,
                executor,
            }
        }

        /// A loom model's proof: its tasks are all of executor `executor`,
        /// run on the model's main thread.
        #[cfg(all(test, loom))]
        pub(super) fn assumed(executor: usize) -> OnExecutor<'static> {
            OnExecutor {
                thread: PhantomData,
                executor,
            }
        }

        /// The executor it proves to be on.
        pub(super) fn executor(self) -> usize {
            self.executor
        }
    }
}

pub(crate) use proof::OnExecutor;
use proof::ThreadBound;

impl Header {
    /// The thread-bound part, with the proof of being on its executor's
    /// thread (checked, in debug builds, to be this task's executor's).
    #[inline]
    fn local<'a>(&'a self, on: OnExecutor<'a>) -> &'a LocalHeader {
        debug_assert_eq!(
            on.executor(),
            self.sync.shared.id(),
            "tarn: a task reached with another executor's proof"
        );
        self.local.get(on)
    }
}

/// The header and the join slot: the part of a task whose layout depends
/// only on the output type, so a `JoinHandle<T>` can reach it.
#[repr(C)]
struct Prefix<T> {
    header: Header,
    outcome: UnsafeCell<Outcome<T>>,
}

/// A whole task allocation.
#[repr(C)]
struct RawTask<F: Future> {
    prefix: Prefix<F::Output>,
    future: UnsafeCell<ManuallyDrop<F>>,
}

/// What the executor needs to do with a task without knowing its type.
struct TaskVTable {
    /// Polls the future; on completion drops it and records the outcome.
    /// Returns whether the task finished.
    poll: unsafe fn(NonNull<Header>, &mut Context<'_>, OnExecutor<'_>) -> bool,
    /// Drops the future (if still alive) and records a cancellation.
    cancel: unsafe fn(NonNull<Header>, OnExecutor<'_>),
    /// Frees the allocation.
    dealloc: unsafe fn(NonNull<Header>),
}

/// One counted reference to a task.
pub(crate) struct TaskRef(NonNull<Header>);

// SAFETY: a `TaskRef` that crosses threads (a wake queued on the remote
// queue, a waker dropped elsewhere) is only used there to touch the
// reference count and the `Sync` parts of the header, or to free the
// allocation, which by the module's rules drops nothing thread-bound.
unsafe impl Send for TaskRef {}

/// Allocates task `id` for `future` with key `key`, queued to run. Returns
/// the table's reference, the queue's reference and the join handle's.
pub(crate) fn allocate<F: Future + 'static>(
    future: F,
    id: u64,
    key: usize,
    shared: Arc<Shared>,
) -> (TaskRef, TaskRef, Handle<F::Output>) {
    let task = Box::new(RawTask {
        prefix: Prefix {
            header: Header {
                sync: SyncHeader {
                    refs: AtomicUsize::new(3),
                    shared,
                    vtable: &RawTask::<F>::VTABLE,
                    scheduled: AtomicBool::new(true),
                },
                local: ThreadBound::new(LocalHeader {
                    id,
                    key: Cell::new(task_key(key)),
                    polls: Cell::new(0),
                    last_poll: Cell::new(0),
                    alive: Cell::new(true),
                    polling: Cell::new(false),
                    cancel: Cell::new(false),
                    handle: Cell::new(true),
                }),
            },
            outcome: UnsafeCell::new(Outcome::Running(None)),
        },
        future: UnsafeCell::new(ManuallyDrop::new(future)),
    });
    // `RawTask` is `repr(C)` with the header first: the pointers coincide.
    let header = NonNull::from(Box::leak(task)).cast::<Header>();
    let handle = Handle {
        ptr: header,
        _marker: PhantomData,
    };
    (TaskRef(header), TaskRef(header), handle)
}

/// A task table key as the header keeps it.
fn task_key(key: usize) -> u32 {
    u32::try_from(key).unwrap_or_else(|_| panic!("tarn: more than {} live tasks", u32::MAX))
}

impl<F: Future> RawTask<F> {
    const VTABLE: TaskVTable = TaskVTable {
        poll: Self::poll,
        cancel: Self::cancel,
        dealloc: Self::dealloc,
    };

    /// # Safety
    /// The future is alive and not being polled.
    unsafe fn poll(ptr: NonNull<Header>, cx: &mut Context<'_>, on: OnExecutor<'_>) -> bool {
        let task = ptr.cast::<RawTask<F>>().as_ptr();
        // SAFETY: the future is alive, never moved since allocation (the
        // allocation is never moved), and only this call touches it now.
        let future = unsafe { Pin::new_unchecked(&mut **(*task).future.get()) };
        let result = match catch_task_panic(|| future.poll(cx)) {
            Ok(Poll::Pending) => return false,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(payload) => Err(JoinError::panicked(payload)),
        };
        // SAFETY: not being polled any more.
        unsafe { Self::finish(ptr, result, on) };
        true
    }

    /// # Safety
    /// Not while the future is being polled.
    unsafe fn cancel(ptr: NonNull<Header>, on: OnExecutor<'_>) {
        // SAFETY: as required by this function.
        unsafe { Self::finish(ptr, Err(JoinError::cancelled()), on) }
    }

    /// Drops the future (once), then records `result` for the join handle,
    /// unless an outcome is already there or the handle is gone.
    ///
    /// Never unwinds: the future's destructor, like its `poll`, is the
    /// task's own code, and a panic there becomes the task's outcome (in
    /// place of its output or its cancellation; after a panic in `poll`,
    /// the first panic stays). Whatever is left over (an output nobody will
    /// read) is dropped the same way.
    ///
    /// # Safety
    /// Not while the future is being polled.
    unsafe fn finish(
        ptr: NonNull<Header>,
        result: Result<F::Output, JoinError>,
        on: OnExecutor<'_>,
    ) {
        let task = ptr.cast::<RawTask<F>>().as_ptr();
        // SAFETY: the header is alive while we hold a reference.
        let header = unsafe { ptr.as_ref() };
        let local = header.local(on);
        let mut result = result;
        let mut leftover = None;
        if local.alive.replace(false) {
            // Nothing is left to poll: a wake from now on (h2 wakes each
            // stream's task once more after it finished) finds the task
            // scheduled already and queues nothing.
            header.sync.scheduled.store(true, Ordering::Release);
            // SAFETY: the future was alive (and is now marked dropped, so it
            // is dropped exactly once); nothing else touches it meanwhile.
            let dropped =
                catch_task_panic(|| unsafe { ManuallyDrop::drop(&mut *(*task).future.get()) });
            if let Err(payload) = dropped {
                if !is_panic(&result) {
                    let panicked = Err(JoinError::panicked(payload));
                    leftover = Some(std::mem::replace(&mut result, panicked));
                }
            }
        }
        let mut waker = None;
        if local.handle.get() {
            // SAFETY: the join slot is only touched on this thread (`on`),
            // and no other borrow of it is alive during this call.
            let outcome = unsafe { &mut *(*task).prefix.outcome.get() };
            match outcome {
                Outcome::Running(stored) => {
                    waker = stored.take();
                    *outcome = Outcome::Done(result);
                }
                // Aborted while it ran (the cancellation was recorded
                // then), and its destructor panicked: that is its outcome.
                Outcome::Done(Err(e)) if e.is_cancelled() && is_panic(&result) => {
                    *outcome = Outcome::Done(result);
                }
                _ => leftover = Some(result),
            }
        } else {
            leftover = Some(result);
        }
        if let Some(leftover) = leftover {
            let _ = catch_task_panic(|| drop(leftover));
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// # Safety
    /// The last reference is gone; see the module's thread rules. No
    /// [`OnExecutor`] is needed: the last reference may go on any thread,
    /// and by then nothing thread-bound is left to drop.
    unsafe fn dealloc(ptr: NonNull<Header>) {
        // SAFETY: the pointer came from `Box::leak` of a `RawTask<F>`. The
        // future is `ManuallyDrop` (already dropped) and the join slot holds
        // no output and no waker, so this drops only the `Arc<Shared>`.
        drop(unsafe { Box::from_raw(ptr.cast::<RawTask<F>>().as_ptr()) });
    }
}

/// Whether `result` is a panic's.
fn is_panic<T>(result: &Result<T, JoinError>) -> bool {
    matches!(result, Err(e) if e.is_panic())
}

impl TaskRef {
    fn header(&self) -> &Header {
        // SAFETY: the reference we hold keeps the allocation alive.
        unsafe { self.0.as_ref() }
    }

    /// Polls the task (on the executor's thread) unless its future is gone.
    /// Returns whether the task is over (finished, or cancelled by itself
    /// during the poll), so the executor drops it from its table; `None`
    /// for an entry that outlived its future (woken during its last poll,
    /// say), which ran nothing.
    ///
    /// `now` is the executor's coarse clock, recorded as the task's last
    /// poll.
    pub(crate) fn run(&self, on: OnExecutor<'_>, now: u32) -> Option<bool> {
        let header = self.header();
        let local = header.local(on);
        if !local.alive.get() {
            // Queued before its future went; `scheduled` stays set.
            return None;
        }
        // Wakes from here on queue the task again. A swap, not a store: a
        // waker on another thread makes the task's condition true, then
        // swaps `scheduled`; with a plain store here the poll below could
        // miss the condition while that swap still read `true` (the store
        // sitting in this core's store buffer), and the wake would be
        // lost. As read-modify-writes, the two are ordered: either the
        // waker's swap reads `false` and queues the task again, or this
        // swap reads the waker's `true` and acquires what it wrote before.
        // (Found by the loom model below.)
        header.sync.scheduled.swap(false, Ordering::Acquire);
        local.polling.set(true);
        local.polls.set(local.polls.get().saturating_add(1));
        local.last_poll.set(now);
        // SAFETY: the raw waker is this task's pointer with the waker vtable;
        // `ManuallyDrop` keeps it from releasing a reference it never took.
        let waker = ManuallyDrop::new(unsafe {
            Waker::from_raw(RawWaker::new(self.0.as_ptr().cast(), &WAKER))
        });
        // Wakers this task stores in the reactor need no driver but ours.
        tarn_reactor::driver::DriverGuard::polling(&waker);
        // SAFETY: the future is alive (checked) and not already being
        // polled (a task is polled from the queue only).
        let finished =
            unsafe { (header.sync.vtable.poll)(self.0, &mut Context::from_waker(&waker), on) };
        local.polling.set(false);
        if finished {
            return Some(true);
        }
        if local.cancel.replace(false) {
            // SAFETY: after the poll.
            unsafe { (header.sync.vtable.cancel)(self.0, on) };
            return Some(true);
        }
        Some(false)
    }

    /// Cancels the task: drops its future now, or right after its poll if
    /// it is the one being polled. Returns whether it was dropped now.
    pub(crate) fn cancel(&self, on: OnExecutor<'_>) -> bool {
        // SAFETY: we hold a reference.
        unsafe { cancel(self.0, on) }
    }

    /// What the task is doing, for a task dump.
    pub(crate) fn snapshot(&self, on: OnExecutor<'_>) -> Snapshot {
        let header = self.header();
        let local = header.local(on);
        let state = if local.polling.get() {
            crate::dump::TaskState::Running
        } else if header.sync.scheduled.load(Ordering::Acquire) {
            crate::dump::TaskState::Scheduled
        } else {
            crate::dump::TaskState::Idle
        };
        Snapshot {
            id: local.id,
            state,
            polls: local.polls.get(),
            last_poll: (local.polls.get() > 0).then(|| local.last_poll.get()),
            waker: WakerIdentity(self.0.as_ptr() as usize, &WAKER as *const _ as usize),
        }
    }

    /// The task's key in its executor's table.
    pub(crate) fn key(&self, on: OnExecutor<'_>) -> usize {
        self.header().local(on).key.get() as usize
    }

    /// The task's id.
    pub(crate) fn id(&self, on: OnExecutor<'_>) -> u64 {
        self.header().local(on).id
    }

    /// Whether this is a reference to the task at `ptr`.
    pub(crate) fn is(&self, ptr: NonNull<Header>) -> bool {
        self.0 == ptr
    }

    /// The task's pointer (the reference stays with `self`).
    pub(crate) fn as_ptr(&self) -> NonNull<Header> {
        self.0
    }
}

/// What a task dump reads of a task's header.
pub(crate) struct Snapshot {
    pub(crate) id: u64,
    pub(crate) state: crate::dump::TaskState,
    pub(crate) polls: u32,
    /// The executor's coarse clock at the last poll.
    pub(crate) last_poll: Option<u32>,
    /// The task's waker as data and vtable addresses, to find it among
    /// the wakers the reactor holds.
    pub(crate) waker: WakerIdentity,
}

/// A waker's data and vtable addresses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct WakerIdentity(pub(crate) usize, pub(crate) usize);

/// See [`TaskRef::cancel`]; for the join handle, which holds the pointer.
///
/// # Safety
/// The caller holds a reference to the task at `ptr`.
unsafe fn cancel(ptr: NonNull<Header>, on: OnExecutor<'_>) -> bool {
    // SAFETY: the caller holds a reference (this function's contract).
    let header = unsafe { ptr.as_ref() };
    let local = header.local(on);
    if local.polling.get() {
        local.cancel.set(true);
        return false;
    }
    if local.alive.get() {
        // SAFETY: the future is not being polled.
        unsafe { (header.sync.vtable.cancel)(ptr, on) };
    }
    true
}

impl Clone for TaskRef {
    fn clone(&self) -> TaskRef {
        // SAFETY: we hold a reference.
        unsafe { acquire(self.0) };
        TaskRef(self.0)
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        // SAFETY: we hold a reference and give it up.
        unsafe { release(self.0) }
    }
}

/// Takes one more reference.
///
/// # Safety
/// The caller holds a reference.
unsafe fn acquire(ptr: NonNull<Header>) {
    // SAFETY: alive while the caller's reference is.
    let refs = unsafe { &ptr.as_ref().sync.refs };
    if refs.fetch_add(1, Ordering::Relaxed) > isize::MAX as usize {
        std::process::abort();
    }
}

/// Gives up one reference, freeing the task with the last one.
///
/// # Safety
/// The caller holds the reference it gives up.
unsafe fn release(ptr: NonNull<Header>) {
    // SAFETY: alive until the count reaches zero below.
    let header = unsafe { &ptr.as_ref().sync };
    if header.refs.fetch_sub(1, Ordering::Release) == 1 {
        fence(Ordering::Acquire);
        let dealloc = header.vtable.dealloc;
        // SAFETY: this was the last reference.
        unsafe { dealloc(ptr) };
    }
}

/// Queues the task unless it is queued already. Takes a new reference for
/// the queue entry.
fn wake_by_ref(ptr: NonNull<Header>) {
    // SAFETY: the waker calling this holds a reference. A waker may be on
    // any thread: it reaches the `Sync` part only.
    let header = unsafe { &ptr.as_ref().sync };
    if !header.scheduled.swap(true, Ordering::AcqRel) {
        // SAFETY: as above.
        unsafe { acquire(ptr) };
        schedule(Job::Task(TaskRef(ptr)), &header.shared);
    }
}

static WAKER: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

fn header_ptr(data: *const ()) -> NonNull<Header> {
    // SAFETY: task wakers are made from non-null task pointers only.
    unsafe { NonNull::new_unchecked(data.cast_mut().cast::<Header>()) }
}

unsafe fn waker_clone(data: *const ()) -> RawWaker {
    // SAFETY: the waker being cloned holds a reference.
    unsafe { acquire(header_ptr(data)) };
    RawWaker::new(data, &WAKER)
}

unsafe fn waker_wake(data: *const ()) {
    let ptr = header_ptr(data);
    // Not handing this waker's reference to the queue entry: it keeps the
    // task, and so the executor's `Shared`, alive until `schedule` is done
    // with it; a queued entry may be drained and dropped by the executor
    // (even a dropping one) before `schedule` returns.
    wake_by_ref(ptr);
    // SAFETY: a consumed waker gives up its reference.
    unsafe { release(ptr) };
}

unsafe fn waker_wake_by_ref(data: *const ()) {
    wake_by_ref(header_ptr(data));
}

unsafe fn waker_drop(data: *const ()) {
    // SAFETY: a dropped waker gives up its reference.
    unsafe { release(header_ptr(data)) };
}

/// The join handle's reference to its task, typed by the task's output.
pub(crate) struct Handle<T> {
    ptr: NonNull<Header>,
    /// `!Send` and `!Sync`: the join slot lives on the executor's thread.
    _marker: PhantomData<(Rc<()>, T)>,
}

impl<T> Handle<T> {
    /// Runs `f` on the task's join slot.
    pub(crate) fn with_outcome<R>(&self, f: impl FnOnce(&mut Outcome<T>) -> R) -> R {
        // SAFETY: `RawTask<F>` starts with `Prefix<F::Output>` (`repr(C)`)
        // and `T` is `F::Output` (see `allocate`); we hold a reference; the
        // handle is `!Send`, so this is the executor's thread; the borrow
        // ends with `f`, and `f` (the join handle's code) never polls,
        // cancels or finishes a task.
        let outcome = unsafe { &mut *(*self.ptr.cast::<Prefix<T>>().as_ptr()).outcome.get() };
        f(outcome)
    }

    /// Cancels the task; see [`TaskRef::cancel`].
    pub(crate) fn cancel(&self) -> bool {
        // SAFETY: the handle holds a reference.
        unsafe { cancel(self.ptr, self.on_executor()) }
    }

    /// The task's key in its executor's table.
    pub(crate) fn key(&self) -> usize {
        // SAFETY: the handle holds a reference.
        let header = unsafe { self.ptr.as_ref() };
        header.local(self.on_executor()).key.get() as usize
    }

    /// The executor's and the task's numbers.
    pub(crate) fn id(&self) -> (usize, u64) {
        // SAFETY: the handle holds a reference.
        let header = unsafe { self.ptr.as_ref() };
        (header.sync.shared.id(), header.local(self.on_executor()).id)
    }

    /// The proof a join handle gives: it is `!Send` and `!Sync`, and made
    /// on the executor's thread, so a borrow of it is there.
    pub(crate) fn on_executor(&self) -> OnExecutor<'_> {
        // SAFETY: the handle holds a reference.
        let executor = unsafe { self.ptr.as_ref() }.sync.shared.id();
        OnExecutor::of_handle(self, executor)
    }

    /// The task's pointer.
    pub(crate) fn as_ptr(&self) -> NonNull<Header> {
        self.ptr
    }
}

impl<T> Drop for Handle<T> {
    /// Empties the join slot (dropping the output or the stored waker here,
    /// on the executor's thread), tells the task to drop its output at once
    /// when it finishes, and gives up the handle's reference.
    fn drop(&mut self) {
        // SAFETY: we hold a reference.
        let header = unsafe { self.ptr.as_ref() };
        header.local(self.on_executor()).handle.set(false);
        let taken = self.with_outcome(|outcome| std::mem::replace(outcome, Outcome::Taken));
        drop(taken);
        // SAFETY: the handle's reference, given up once.
        unsafe { release(self.ptr) };
    }
}

#[cfg(test)]
mod tests {
    /// Every connection's task carries a header and a join slot beside its
    /// future; they are part of the idle-connection memory budget.
    #[test]
    // loom's atomics and `Arc` are larger than std's: the budget is std's.
    #[cfg(all(target_pointer_width = "64", not(loom)))]
    fn the_task_header_stays_small() {
        // 16 of the 56 bytes are the task dump's: id, polls, last poll.
        assert_eq!(std::mem::size_of::<super::Header>(), 56);
        assert!(std::mem::size_of::<super::Prefix<()>>() <= 80);
    }
}

/// loom models of the task's state machine: `bash .ci/loom.sh`. The
/// executor's thread is the model's main thread; a waker goes to another.
/// The model plays the executor's part with the executor's own pieces: it
/// runs queue entries ([`TaskRef::run`]), picks up the wakes queued from
/// elsewhere and closes the queue as a dropped executor does
/// ([`Shared::close`]), and holds the join handle. The task's future and
/// output record where and how often they are dropped; loom reports an
/// `Arc<Shared>` the task allocation never gave back (a leaked task).
#[cfg(all(test, loom))]
mod model {
    use std::cell::Cell;
    use std::future::Future;
    use std::pin::Pin;
    use std::ptr::NonNull;
    use std::rc::Rc;
    use std::sync::atomic::Ordering::SeqCst;
    use std::task::{Context, Poll, Waker};

    use loom::sync::atomic::{AtomicBool, AtomicUsize};
    use loom::sync::{Arc, Mutex};
    use loom::thread::{self, ThreadId};

    use super::{allocate, cancel, Handle, Header, OnExecutor, TaskRef};
    use crate::executor::{Job, Shared};
    use crate::join::Outcome;

    /// What the task's parts report.
    struct Probe {
        executor: ThreadId,
        future_drops: AtomicUsize,
        output_drops: AtomicUsize,
        /// The future is inside its `poll` now.
        polling: AtomicBool,
        /// Set by the other thread before it wakes the task.
        ready: AtomicBool,
        /// The waker of the future's last `Pending`.
        waker: Mutex<Option<Waker>>,
    }

    impl Probe {
        fn new() -> Arc<Probe> {
            Arc::new(Probe {
                executor: thread::current().id(),
                future_drops: AtomicUsize::new(0),
                output_drops: AtomicUsize::new(0),
                polling: AtomicBool::new(false),
                ready: AtomicBool::new(false),
                waker: Mutex::new(None),
            })
        }

        fn waker(&self) -> Waker {
            self.waker
                .lock()
                .unwrap()
                .clone()
                .expect("the task was polled")
        }

        fn assert_on_executor(&self, what: &str) {
            assert_eq!(
                thread::current().id(),
                self.executor,
                "{what} dropped off the executor's thread"
            );
        }
    }

    /// The task's output.
    struct Output(Arc<Probe>);

    impl Drop for Output {
        fn drop(&mut self) {
            self.0.assert_on_executor("the output");
            self.0.output_drops.fetch_add(1, SeqCst);
        }
    }

    /// Ready once `ready` is set; else stores its waker. Its second poll
    /// aborts its own task if `abort_self` names it.
    struct Probed {
        probe: Arc<Probe>,
        polls: usize,
        abort_self: Rc<Cell<Option<NonNull<Header>>>>,
    }

    impl Future for Probed {
        type Output = Output;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output> {
            self.polls += 1;
            let probe = Arc::clone(&self.probe);
            probe.polling.store(true, SeqCst);
            if self.polls == 2 {
                if let Some(task) = self.abort_self.get() {
                    // `JoinHandle::abort` from inside the task's own poll.
                    // SAFETY: the model's `World` holds the table's
                    // reference while the task runs.
                    let dropped = unsafe { cancel(task, OnExecutor::assumed(1)) };
                    assert!(!dropped, "dropped during its poll");
                }
            }
            let res = if probe.ready.load(SeqCst) {
                Poll::Ready(Output(Arc::clone(&probe)))
            } else {
                *probe.waker.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            };
            probe.polling.store(false, SeqCst);
            res
        }
    }

    impl Drop for Probed {
        fn drop(&mut self) {
            self.probe.assert_on_executor("the future");
            assert!(
                !self.probe.polling.load(SeqCst),
                "the future dropped inside its own poll"
            );
            self.probe.future_drops.fetch_add(1, SeqCst);
        }
    }

    /// A task on an executor nobody parks for (wakes from elsewhere are
    /// queued; the unpark finds no sleeper), polled once: Pending, with its
    /// waker stored.
    struct World {
        probe: Arc<Probe>,
        shared: Arc<Shared>,
        table: TaskRef,
        handle: Option<Handle<Output>>,
        abort_self: Rc<Cell<Option<NonNull<Header>>>>,
    }

    fn on() -> OnExecutor<'static> {
        OnExecutor::assumed(1)
    }

    impl World {
        fn new() -> World {
            let probe = Probe::new();
            let shared = Shared::new(1, tarn_reactor::driver::Parker::new().unparker(), false);
            let abort_self = Rc::new(Cell::new(None));
            let future = Probed {
                probe: Arc::clone(&probe),
                polls: 0,
                abort_self: Rc::clone(&abort_self),
            };
            let (table, queued, handle) = allocate(future, 1, 0, Arc::clone(&shared));
            assert_eq!(queued.run(on(), 0), Some(false));
            drop(queued);
            World {
                probe,
                shared,
                table,
                handle: Some(handle),
                abort_self,
            }
        }

        /// Runs what other threads queued, as the executor's loop does;
        /// returns what each run returned (`None`: it polled nothing).
        fn run_remote(&self) -> Vec<Option<bool>> {
            let mut queue = std::collections::VecDeque::new();
            self.shared.drain_remote_into(&mut queue);
            let mut runs = Vec::new();
            for job in queue {
                if let Job::Task(task) = job {
                    runs.push(task.run(on(), 0));
                }
            }
            runs
        }

        fn outcome_is(&self, done: impl FnOnce(&Outcome<Output>) -> bool) -> bool {
            self.handle.as_ref().unwrap().with_outcome(|o| done(o))
        }

        /// Drops what the executor holds (the handle, the table's
        /// reference, the waker the future stored last); returns what checks
        /// the drops.
        fn release(mut self) -> (Arc<Probe>, Arc<Shared>) {
            drop(self.handle.take());
            drop(self.table);
            drop(self.probe.waker.lock().unwrap().take());
            (self.probe, self.shared)
        }

        /// [`release`](Self::release)s and checks what each part saw.
        fn finish(self, future_drops: usize, output_drops: usize) {
            let (probe, shared) = self.release();
            assert_drops(&probe, &shared, future_drops, output_drops);
        }
    }

    /// The future and output were dropped as often as said, and every
    /// reference to the task is gone: the allocation gave its `Arc` back.
    fn assert_drops(probe: &Probe, shared: &Arc<Shared>, future_drops: usize, output_drops: usize) {
        assert_eq!(
            probe.future_drops.load(SeqCst),
            future_drops,
            "future drops"
        );
        assert_eq!(
            probe.output_drops.load(SeqCst),
            output_drops,
            "output drops"
        );
        assert_eq!(Arc::strong_count(shared), 1, "the task was not freed");
    }

    /// Another thread makes the task ready and wakes it while the executor
    /// polls it (woken by something else meanwhile): the wake is never
    /// lost, the task completes, its future and output are dropped once,
    /// on the executor's thread.
    #[test]
    fn a_wake_from_another_thread_during_a_poll_is_not_lost() {
        loom::model(|| {
            let world = World::new();
            let waker = world.probe.waker();
            let probe = Arc::clone(&world.probe);
            let other = thread::spawn(move || {
                probe.ready.store(true, SeqCst);
                waker.wake();
            });
            // A wake on the executor's own thread, and the poll it queues.
            world.probe.waker().wake_by_ref();
            world.run_remote();
            other.join().unwrap();
            world.run_remote();
            assert!(
                world.outcome_is(|o| matches!(o, Outcome::Done(Ok(_)))),
                "the task never completed: a wake was lost"
            );
            world.finish(1, 1);
        });
    }

    /// The task aborts itself inside its poll while another thread wakes
    /// it: the future is dropped once, after that poll, and never polled
    /// again; the handle sees the cancellation.
    #[test]
    fn an_abort_during_a_poll_drops_the_future_once_after_it() {
        loom::model(|| {
            let world = World::new();
            world.abort_self.set(Some(world.table.as_ptr()));
            let waker = world.probe.waker();
            let other = thread::spawn(move || waker.wake());
            // The second poll: it aborts itself.
            assert_eq!(world.table.run(on(), 0), Some(true));
            other.join().unwrap();
            // The wake may have queued it again: that entry polls nothing.
            let runs = world.run_remote();
            assert!(
                runs.iter().all(Option::is_none),
                "polled again after its abort: {runs:?}"
            );
            assert!(world.outcome_is(|o| matches!(o, Outcome::Done(Err(e)) if e.is_cancelled())));
            world.finish(1, 0);
        });
    }

    /// The task completes and its join handle and table entry go while
    /// another thread drops a waker: whichever thread frees the task, the
    /// future and output were dropped on the executor's thread, once.
    #[test]
    fn the_last_reference_may_go_on_any_thread_after_the_executor_dropped_the_task() {
        loom::model(|| {
            let world = World::new();
            let waker = world.probe.waker();
            let other = thread::spawn(move || drop(waker));
            world.probe.ready.store(true, SeqCst);
            assert_eq!(world.table.run(on(), 0), Some(true));
            let (probe, shared) = world.release();
            other.join().unwrap();
            assert_drops(&probe, &shared, 1, 1);
        });
    }

    /// The same with the task detached: its join handle is dropped before
    /// the poll that completes it, so nobody takes the output. It is dropped
    /// at once, on the executor's thread, not left for whichever thread
    /// lets go of the task last.
    #[test]
    fn a_detached_tasks_output_is_dropped_on_the_executors_thread() {
        loom::model(|| {
            let mut world = World::new();
            drop(world.handle.take());
            let waker = world.probe.waker();
            let other = thread::spawn(move || drop(waker));
            world.probe.ready.store(true, SeqCst);
            assert_eq!(world.table.run(on(), 0), Some(true));
            let (probe, shared) = world.release();
            other.join().unwrap();
            assert_drops(&probe, &shared, 1, 1);
        });
    }

    /// The executor is dropped (its queue closed, its tasks cancelled, its
    /// references let go) while another thread wakes the task: the wake is
    /// dropped where it was made or with the queue, the future once on the
    /// executor's thread, the task freed by whichever thread lets go last,
    /// and nothing is leaked.
    #[test]
    fn an_executor_dropped_while_a_waker_wakes_elsewhere_leaks_nothing() {
        loom::model(|| {
            let world = World::new();
            let waker = world.probe.waker();
            let other = thread::spawn(move || waker.wake());
            drop(world.shared.close());
            assert!(world.table.cancel(on()));
            // The executor lets go of everything before the waker thread is
            // done: its wake (and the last reference) may come after.
            let (probe, shared) = world.release();
            other.join().unwrap();
            assert_drops(&probe, &shared, 1, 0);
        });
    }
}
