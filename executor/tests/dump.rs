//! The task dump, on every backend: each live task with its id, name,
//! spawn location, state, polls, time since its last poll, and the fds and
//! timers the reactors hold its waker for; finished tasks gone from it.

use std::cell::RefCell;
use std::future::poll_fn;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use tarn_executor::{block_on, spawn, tasks, try_id, yield_now, TaskBuilder, TaskState, Waiting};
use tarn_reactor::{Async, Timer};
use tarn_test_support::{fill_send_buffer, rerun_on_poll_and_select, unix_pair};

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", None);
}

/// The value of `$e` and the line it is on.
macro_rules! at_line {
    ($e:expr) => {
        ($e, line!())
    };
}

#[test]
fn the_dump_names_each_task_where_it_was_spawned_with_its_id() {
    block_on(async {
        assert_eq!(try_id(), None, "the block_on future is not a task");
        let first = TaskBuilder::new().name("first");
        let (a, line_a) = at_line!(first.spawn(async { try_id() }));
        let (b, line_b) = at_line!(spawn(async { try_id() }));
        let dump = tasks();
        assert_eq!(dump.len(), 2);
        assert_eq!(dump[0].name.as_deref(), Some("first"));
        assert_eq!(dump[1].name, None);
        assert_eq!(
            (dump[0].location.file(), dump[0].location.line()),
            (file!(), line_a)
        );
        assert_eq!(
            (dump[1].location.file(), dump[1].location.line()),
            (file!(), line_b)
        );
        assert!(dump[0].id < dump[1].id, "not in spawn order");
        assert_eq!(dump[0].since_last_poll, None);
        assert_eq!(
            dump[0].state,
            TaskState::Scheduled,
            "spawned tasks are queued"
        );
        let (id_a, id_b) = (a.id(), b.id());
        assert_eq!((dump[0].id, dump[1].id), (id_a, id_b));
        assert_eq!(a.await.unwrap(), Some(id_a), "try_id inside the task");
        assert_eq!(b.await.unwrap(), Some(id_b));
        assert!(tasks().is_empty(), "finished tasks are still listed");
    });
    assert!(
        tasks().is_empty(),
        "a dump outside an executor lists nothing"
    );
}

#[test]
fn the_dump_tells_running_scheduled_and_idle_apart_and_counts_polls() {
    block_on(async {
        let slot: Rc<RefCell<Option<Waker>>> = Rc::default();
        let parked = slot.clone();
        let sleeper = TaskBuilder::new().name("parked").spawn(poll_fn(move |cx| {
            *parked.borrow_mut() = Some(cx.waker().clone());
            Poll::<()>::Pending
        }));
        let looker = TaskBuilder::new().name("looker").spawn(async {
            for _ in 0..5 {
                yield_now().await;
            }
            let me = tasks()
                .into_iter()
                .find(|t| t.name.as_deref() == Some("looker"))
                .unwrap();
            (me.state, me.polls)
        });
        let (state, polls) = looker.await.unwrap();
        assert_eq!(state, TaskState::Running);
        assert_eq!(polls, 6, "one poll to start and one after each of 5 yields");

        let find = || {
            tasks()
                .into_iter()
                .find(|t| t.name.as_deref() == Some("parked"))
                .unwrap()
        };
        assert_eq!(find().state, TaskState::Idle);
        Timer::after(Duration::from_millis(60)).await;
        let idle = find();
        let ago = idle.since_last_poll.expect("it was polled");
        assert!(
            ago >= Duration::from_millis(40) && ago < Duration::from_secs(10),
            "{ago:?}"
        );
        assert!(
            idle.waiting.is_empty(),
            "woken by a waker of its own: {:?}",
            idle.waiting
        );
        slot.borrow_mut().take().unwrap().wake();
        assert_eq!(find().state, TaskState::Scheduled);
        sleeper.abort();
    });
}

#[test]
fn the_dump_shows_the_fds_and_timers_a_task_waits_on() {
    block_on(async {
        let (reader, _peer) = unix_pair();
        let reader = Async::new(reader).unwrap();
        let read_fd = reader.as_raw_fd();
        let reading = TaskBuilder::new().name("reading").spawn(async move {
            let mut reader = reader;
            let mut buf = [0; 16];
            reader.read(&mut buf).await
        });

        let (writer, _unread) = unix_pair();
        fill_send_buffer(&writer);
        let writer = Async::new(writer).unwrap();
        let write_fd = writer.as_raw_fd();
        let writing = TaskBuilder::new().name("writing").spawn(async move {
            let mut writer = writer;
            writer.write_all(&[1; 1 << 20]).await
        });

        let sleeping = TaskBuilder::new()
            .name("sleeping")
            .spawn(Timer::after(Duration::from_secs(60)));
        for _ in 0..3 {
            yield_now().await;
        }
        let dump = tasks();
        let find = |name: &str| {
            dump.iter()
                .find(|t| t.name.as_deref() == Some(name))
                .unwrap()
        };
        assert_eq!(find("reading").waiting, [Waiting::Read(read_fd)]);
        assert_eq!(find("writing").waiting, [Waiting::Write(write_fd)]);
        match find("sleeping").waiting[..] {
            [Waiting::Timer(left)] => {
                assert!(
                    left > Duration::from_secs(50) && left <= Duration::from_secs(60),
                    "{left:?}"
                )
            }
            ref other => panic!("the sleeping task waits on {other:?}"),
        }
        let line = find("reading").to_string();
        assert!(
            line.contains("\"reading\"") && line.contains(&format!("read fd {read_fd}")),
            "{line}"
        );
        for task in [reading.id(), writing.id(), sleeping.id()] {
            assert!(dump.iter().any(|t| t.id == task));
        }
        reading.abort();
        writing.abort();
        sleeping.abort();
    });
}
