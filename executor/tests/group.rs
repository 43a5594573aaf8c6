//! Task groups: outcomes in the order tasks end, panics as outcomes, every
//! task aborted when the group is dropped, and a graceful shutdown that
//! waits out its grace period and then aborts what is left.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tarn_executor::{block_on, yield_now, Stopped, TaskBuilder, TaskGroup};
use tarn_reactor::Timer;
use tarn_test_support::rerun_on_poll_and_select;

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", None);
}

/// Sets its flag when dropped.
struct Flag(Rc<Cell<bool>>);

impl Drop for Flag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn outcomes_come_in_the_order_the_tasks_end() {
    block_on(async {
        let group = TaskGroup::new();
        for (i, ms) in [(0, 30), (1, 10), (2, 20)] {
            group.spawn(async move {
                Timer::after(Duration::from_millis(ms)).await;
                i
            });
        }
        assert_eq!(group.len(), 3);
        let order: Vec<i32> = group
            .join_all()
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(order, [1, 2, 0]);
        assert!(group.is_empty());
        assert!(
            group.join_next().await.is_none(),
            "an empty group yields None"
        );
    });
}

#[test]
fn a_panicking_task_is_an_outcome_and_the_others_go_on() {
    block_on(async {
        let group = TaskGroup::new();
        group.spawn(async { panic!("one task fails") });
        group.spawn(async {
            Timer::after(Duration::from_millis(5)).await;
            7
        });
        let first = group.join_next().await.unwrap();
        assert!(first.unwrap_err().is_panic());
        assert_eq!(group.join_next().await.unwrap().unwrap(), 7);
    });
}

#[test]
fn dropping_the_group_aborts_every_task_in_it() {
    let flags: Vec<Rc<Cell<bool>>> = (0..4).map(|_| Rc::default()).collect();
    let finished = Rc::new(Cell::new(0));
    block_on(async {
        let group = TaskGroup::new();
        for flag in &flags {
            let flag = Flag(flag.clone());
            let finished = finished.clone();
            group.spawn(async move {
                let _flag = flag;
                Timer::after(Duration::from_secs(3600)).await;
                finished.set(finished.get() + 1);
            });
        }
        Timer::after(Duration::from_millis(5)).await;
        drop(group);
        assert!(flags.iter().all(|f| f.get()), "a task outlived its group");
    });
    assert_eq!(finished.get(), 0);
}

#[test]
fn shutdown_waits_for_the_grace_period_then_aborts_the_rest() {
    block_on(async {
        let group = TaskGroup::new();
        let builder = TaskBuilder::new().name("quick");
        group.spawn_with(&builder, async {
            Timer::after(Duration::from_millis(10)).await;
        });
        let stuck = Rc::new(Cell::new(false));
        let flag = Flag(stuck.clone());
        let id = group.spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        assert!(tarn_executor::tasks().iter().any(|t| t.id == id));
        let started = Instant::now();
        let stopped = group.shutdown(Duration::from_millis(100)).await;
        let took = started.elapsed();
        assert_eq!(
            stopped,
            Stopped {
                finished: 1,
                aborted: 1
            }
        );
        assert!(stuck.get(), "the stuck task was not dropped");
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(5),
            "{took:?}"
        );
        assert!(group.is_empty());
        assert!(tarn_executor::tasks().is_empty());
    });
}

#[test]
fn join_next_is_cancel_safe() {
    block_on(async {
        let group = TaskGroup::new();
        group.spawn(async {
            Timer::after(Duration::from_millis(30)).await;
            "late"
        });
        let early = tarn_reactor::timeout(Duration::from_millis(5), group.join_next()).await;
        assert!(early.is_err(), "nothing had ended yet");
        assert_eq!(group.join_next().await.unwrap().unwrap(), "late");
    });
}

#[test]
fn try_join_next_reaps_what_has_ended_so_nothing_piles_up() {
    block_on(async {
        let group = TaskGroup::new();
        let mut reaped = 0;
        for i in 0..1000 {
            group.spawn(async move { i });
            if i % 10 == 9 {
                yield_now().await;
                while let Some(outcome) = group.try_join_next() {
                    outcome.unwrap();
                    reaped += 1;
                }
                assert!(group.len() <= 10, "{} tasks held", group.len());
            }
        }
        yield_now().await;
        while group.try_join_next().is_some() {
            reaped += 1;
        }
        assert_eq!(reaped, 1000);
        assert!(group.is_empty());
        assert!(tarn_executor::tasks().is_empty());
    });
}
