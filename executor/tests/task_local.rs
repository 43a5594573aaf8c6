//! Task-local values follow their future: tasks interleaved on one thread
//! each see their own, scopes nest, the value is there in the future's
//! destructor, and nowhere outside a scope.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;

use tarn_executor::{block_on, spawn, task_local, yield_now};

task_local! {
    static ID: u32;
    static NAME: String;
}

#[test]
fn interleaved_tasks_each_see_their_own_value() {
    let seen = block_on(async {
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                spawn(ID.scope(i, async move {
                    let mut seen = Vec::new();
                    for _ in 0..3 {
                        // The other tasks run here, with their own values.
                        yield_now().await;
                        seen.push(ID.get());
                    }
                    seen
                }))
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.push(task.await.unwrap());
        }
        all
    });
    assert_eq!(seen, (0..4).map(|i| vec![i; 3]).collect::<Vec<_>>());
    assert!(
        ID.try_with(|_| ()).is_err(),
        "the value leaked out of its scopes"
    );
}

#[test]
fn scopes_nest_and_the_outer_value_comes_back() {
    block_on(NAME.scope("outer".to_string(), async {
        assert_eq!(NAME.with(String::clone), "outer");
        NAME.scope("inner".to_string(), async {
            yield_now().await;
            assert_eq!(NAME.with(String::clone), "inner");
        })
        .await;
        assert_eq!(NAME.with(String::clone), "outer");
        let got = NAME.sync_scope("sync".to_string(), || NAME.with(String::clone));
        assert_eq!(got, "sync");
        assert_eq!(NAME.with(String::clone), "outer");
    }));
}

#[test]
fn the_futures_destructor_sees_the_value() {
    struct ReadsOnDrop(Rc<Cell<Option<u32>>>);
    impl Drop for ReadsOnDrop {
        fn drop(&mut self) {
            self.0.set(ID.try_with(|v| *v).ok());
        }
    }
    let seen = Rc::new(Cell::new(None));
    let guard = ReadsOnDrop(seen.clone());
    let scoped = ID.scope(9, async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    });
    block_on(async {
        let task = spawn(scoped);
        yield_now().await;
        task.abort();
        let _ = task.await;
    });
    assert_eq!(seen.get(), Some(9));
}

#[test]
fn outside_a_scope_the_value_is_an_error_or_a_panic_that_says_so() {
    let err = ID.try_with(|_| ()).unwrap_err();
    assert!(err.to_string().contains("outside any scope"), "{err}");
    let panic = std::panic::catch_unwind(|| ID.get()).unwrap_err();
    let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("outside any scope"), "{text}");
}

#[test]
fn the_value_follows_the_future_to_another_thread() {
    let scoped = ID.scope(5, async {
        yield_now().await;
        ID.get()
    });
    // The first poll here, the rest on another thread, as a multi-threaded
    // executor might do.
    let mut scoped = Box::pin(scoped);
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(scoped.as_mut().poll(&mut cx).is_pending());
    assert!(ID.try_with(|_| ()).is_err());
    let got = std::thread::spawn(move || futures::executor::block_on(scoped))
        .join()
        .unwrap();
    assert_eq!(got, 5);
}
