//! [`Server`]: an accept loop with a task per connection, HTTP/1.1 and
//! HTTP/2 on one port, and graceful shutdown.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::rc::{Rc, Weak};
use std::task::Poll;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::server::conn::auto;
use tarn::channel::oneshot;
use tarn::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tarn::{JoinHandle, Timer};

use crate::{TarnExecutor, TarnIo, TarnTimer};

/// A listener a [`Server`] accepts connections from: tarn's
/// [`TcpListener`] and [`UnixListener`].
pub trait Accept {
    /// The connection accepted.
    type Conn: 'static;

    /// Waits for the next connection.
    fn accept(&self) -> impl Future<Output = io::Result<Self::Conn>>;
}

impl Accept for TcpListener {
    type Conn = TcpStream;

    async fn accept(&self) -> io::Result<TcpStream> {
        TcpListener::accept(self).await.map(|(stream, _)| stream)
    }
}

impl Accept for UnixListener {
    type Conn = UnixStream;

    async fn accept(&self) -> io::Result<UnixStream> {
        UnixListener::accept(self).await.map(|(stream, _)| stream)
    }
}

/// An HTTP server on tarn: HTTP/1.1 and HTTP/2 on one port, a task per
/// connection, and graceful shutdown.
///
/// Each connection is read first: a connection that opens with HTTP/2's
/// preface is served as HTTP/2 (prior-knowledge h2c, or h2 after TLS ALPN),
/// anything else as HTTP/1.1, with upgrades (WebSockets) allowed. hyper's
/// timer is [`TarnTimer`], so HTTP/1's header read timeout is on. A new
/// connection must deliver its first request within the
/// [first request timeout](Server::first_request_timeout) (TLS handshake
/// included), and each later request head on a kept-alive HTTP/1.1
/// connection within the header read timeout (both 30 s by default), so a
/// client that connects and goes silent is dropped. Idle HTTP/2
/// connections are hyper's to bound (`server.http().http2()
/// .keep_alive_interval(..)`).
///
/// A connection is a task on the calling thread's tarn executor, so `serve`
/// runs inside [`tarn::block_on`]. A panic in the service ends that
/// connection alone (tarn's executor catches it; it counts in
/// [`Served::failed`]). Dropping the `serve` future drops its connections.
///
/// When the `shutdown` future given to [`serve`](Server::serve)
/// completes, the server
/// 1. closes the listener (new connections are refused),
/// 2. asks every connection to finish: an idle HTTP/1.1 connection closes
///    at once, one with a request in flight closes after its response,
///    HTTP/2 sends GOAWAY and finishes its open streams,
/// 3. waits for them up to the grace period (10 s by default), then drops
///    what remains, and returns what happened.
///
/// ```no_run
/// use std::convert::Infallible;
/// use hyper::{Request, Response};
/// use hyper::body::Incoming;
/// use tarn::net::TcpListener;
/// use tarn::signal::{Signal, Signals};
///
/// fn main() -> std::io::Result<()> {
///     tarn::block_on(async {
///         let listener = TcpListener::bind("127.0.0.1:8080").await?;
///         let mut stop = Signals::new([Signal::INT, Signal::TERM])?;
///         let service = hyper::service::service_fn(|_: Request<Incoming>| async {
///             Ok::<_, Infallible>(Response::new("Hello, World!".to_string()))
///         });
///         let summary = tarn_hyper::Server::new()
///             .serve(listener, service, async move { stop.recv().await; })
///             .await?;
///         eprintln!("{summary}");
///         Ok(())
///     })
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Server {
    builder: auto::Builder<TarnExecutor>,
    grace: Duration,
    first_request_timeout: Duration,
}

/// What a [`Server`] did, returned when it has shut down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Served {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections that ended with an error before shutdown began: a peer
    /// that sent garbage or reset, a first request that never came, a
    /// failed TLS handshake, a panicking service.
    pub failed: u64,
    /// Connections still open when the grace period ran out, and dropped.
    pub dropped: u64,
}

impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "served {} connections ({} ended with an error, {} dropped at shutdown)",
            self.accepted, self.failed, self.dropped
        )
    }
}

impl Default for Server {
    fn default() -> Server {
        Server::new()
    }
}

impl Server {
    /// A server with hyper's defaults, [`TarnTimer`] as its timer, a 30 s
    /// header read timeout and a 10 s grace period.
    pub fn new() -> Server {
        let mut builder = auto::Builder::new(TarnExecutor);
        builder
            .http1()
            .timer(TarnTimer)
            .header_read_timeout(Duration::from_secs(30));
        builder.http2().timer(TarnTimer);
        Server {
            builder,
            grace: Duration::from_secs(10),
            first_request_timeout: Duration::from_secs(30),
        }
    }

    /// hyper's connection builder, to tune HTTP/1 and HTTP/2 (for example
    /// `server.http().http1().header_read_timeout(..)`).
    pub fn http(&mut self) -> &mut auto::Builder<TarnExecutor> {
        &mut self.builder
    }

    /// How long a new connection has to deliver its first request (30 s by
    /// default), counted from `accept`: the TLS handshake of
    /// [`serve_with`](Server::serve_with), the reading of the first bytes
    /// that tell HTTP/1.1 from HTTP/2, and the first request's head. A
    /// connection that takes longer is closed, and counts in
    /// [`Served::failed`].
    ///
    /// hyper's own header read timeout starts only once the protocol is
    /// known, so without this bound a client that connects and sends
    /// nothing (or a partial HTTP/2 preface, or never finishes its TLS
    /// handshake) would hold its connection for ever. Later requests on a
    /// kept-alive HTTP/1.1 connection are bounded by the header read
    /// timeout.
    pub fn first_request_timeout(mut self, timeout: Duration) -> Server {
        self.first_request_timeout = timeout;
        self
    }

    /// How long shutdown waits for open connections before it drops them.
    pub fn grace_period(mut self, grace: Duration) -> Server {
        self.grace = grace;
        self
    }

    /// Serves `service` on every connection of `listener` until `shutdown`
    /// completes, then shuts down gracefully (see [`Server`]).
    ///
    /// Accept errors that concern one connection (it was reset before it
    /// was accepted) are skipped; others (no memory for a socket) pause
    /// accepting for 10 ms and retry, so the server outlives them.
    pub async fn serve<L, S, B>(
        self,
        listener: L,
        service: S,
        shutdown: impl Future,
    ) -> io::Result<Served>
    where
        L: Accept,
        L::Conn: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + Send,
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + 'static,
        S::Future: 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        self.serve_with(
            listener,
            |conn| std::future::ready(Ok(conn)),
            service,
            shutdown,
        )
        .await
    }

    /// [`serve`](Server::serve), with a handshake run on each accepted
    /// connection (in the connection's own task, so a slow handshake holds
    /// up nobody) before HTTP starts: a TLS acceptor, for one.
    ///
    /// A handshake that fails counts in [`Served::failed`] and closes that
    /// connection.
    pub async fn serve_with<L, H, F, IO, S, B>(
        self,
        listener: L,
        handshake: H,
        service: S,
        shutdown: impl Future,
    ) -> io::Result<Served>
    where
        L: Accept,
        H: Fn(L::Conn) -> F,
        F: Future<Output = io::Result<IO>> + 'static,
        IO: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + 'static,
        S::Future: 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let shared = Rc::new(Shared {
            builder: self.builder,
            first_request_timeout: self.first_request_timeout,
            failed: Cell::new(0),
        });
        // Owned here alone: if this future is dropped, so is `open`, and
        // its drop aborts the connections (they hold it weakly).
        let open = Rc::new(RefCell::new(Open::default()));
        let mut accepted = 0u64;
        let mut shutdown = pin!(shutdown);
        loop {
            let next = {
                let mut accept = pin!(listener.accept());
                poll_fn(|cx| {
                    if shutdown.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    accept.as_mut().poll(cx).map(Some)
                })
                .await
            };
            let conn = match next {
                None => break,
                Some(Ok(conn)) => conn,
                Some(Err(e)) if is_per_connection(&e) => continue,
                Some(Err(_)) => {
                    Timer::after(Duration::from_millis(10)).await;
                    continue;
                }
            };
            accepted += 1;
            let (stop, stopped) = oneshot::channel::<()>();
            let id = open.borrow_mut().next_id();
            let registration = Registration {
                open: Rc::downgrade(&open),
                shared: Rc::clone(&shared),
                id,
            };
            let task = tarn::spawn(connection(
                handshake(conn),
                service.clone(),
                stopped,
                registration,
            ));
            open.borrow_mut().live.insert(id, (stop, task));
        }
        // Stop accepting: from here on connecting is refused.
        drop(listener);
        // Dropping each sender tells its connection to finish.
        let tasks: Vec<JoinHandle<()>> = open
            .borrow_mut()
            .live
            .drain()
            .map(|(_, (_stop, task))| task)
            .collect();
        let mut deadline = Timer::after(self.grace);
        let mut expired = false;
        let mut dropped = 0;
        for mut task in tasks {
            if !expired {
                expired = poll_fn(|cx| {
                    if Pin::new(&mut task).poll(cx).is_ready() {
                        return Poll::Ready(false);
                    }
                    Pin::new(&mut deadline).poll(cx).map(|_| true)
                })
                .await;
            }
            if expired && !task.is_finished() {
                task.abort();
                dropped += 1;
            }
        }
        Ok(Served {
            accepted,
            failed: shared.failed.get(),
            dropped,
        })
    }
}

/// What every connection of one `serve` reads.
struct Shared {
    builder: auto::Builder<TarnExecutor>,
    first_request_timeout: Duration,
    failed: Cell<u64>,
}

/// The connections being served, each with the sender whose drop asks it
/// to finish, and its task.
#[derive(Default)]
struct Open {
    live: HashMap<u64, (oneshot::Sender<()>, JoinHandle<()>)>,
    ids: u64,
}

impl Open {
    fn next_id(&mut self) -> u64 {
        self.ids += 1;
        self.ids
    }
}

impl Drop for Open {
    /// `serve` was dropped before it shut down: its connections go with it.
    fn drop(&mut self) {
        for (_, (_stop, task)) in self.live.drain() {
            task.abort();
        }
    }
}

/// A connection's place in [`Open`], which it leaves however its task ends
/// (returns, panics or is aborted); a panic counts as a failure.
struct Registration {
    open: Weak<RefCell<Open>>,
    shared: Rc<Shared>,
    id: u64,
}

impl Registration {
    fn failed(&self) {
        self.shared.failed.set(self.shared.failed.get() + 1);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.failed();
        }
        if let Some(open) = self.open.upgrade() {
            // Not borrowed here: `serve` takes its tasks out before it
            // aborts any, and `Open`'s own drop has no strong count left.
            open.borrow_mut().live.remove(&self.id);
        }
    }
}

/// Serves one connection: its handshake, then HTTP until the peer is done
/// or `stop` fires, after which it finishes what is in flight.
///
/// Until the service sees a first request, the whole connection (handshake
/// and protocol detection included) is bounded by the first request
/// timeout. The connection is always polled before `stop`, so a request
/// that had already arrived when shutdown began is still served.
async fn connection<F, IO, S, B>(
    handshake: F,
    service: S,
    stop: oneshot::Receiver<()>,
    registration: Registration,
) where
    F: Future<Output = io::Result<IO>>,
    IO: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + 'static,
    S::Future: 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let shared = Rc::clone(&registration.shared);
    let mut stop = pin!(stop);
    let mut stopping = false;
    let started = Rc::new(Cell::new(false));
    let mut first_request = Some(Timer::after(shared.first_request_timeout));
    // Whether the first request is overdue (which ends the connection).
    let mut overdue = |cx: &mut std::task::Context<'_>| match &mut first_request {
        Some(_) if started.get() => {
            first_request = None;
            false
        }
        Some(timer) => Pin::new(timer).poll(cx).is_ready(),
        None => false,
    };

    let io = {
        let mut handshake = pin!(handshake);
        poll_fn(|cx| {
            if let Poll::Ready(io) = handshake.as_mut().poll(cx) {
                return Poll::Ready(io.map(Some));
            }
            if overdue(cx) {
                return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
            }
            // Shut down before HTTP began: not a failure.
            stop.as_mut().poll(cx).map(|_| Ok(None))
        })
        .await
    };
    let io = match io {
        Ok(Some(io)) => io,
        Ok(None) => return,
        Err(_) => return registration.failed(),
    };
    let service = FirstRequest {
        inner: service,
        started: Rc::clone(&started),
    };
    let conn = shared
        .builder
        .serve_connection_with_upgrades(TarnIo::new(io), service);
    let mut conn = pin!(conn);
    let result = poll_fn(|cx| {
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            return Poll::Ready(Some(result));
        }
        if !stopping && overdue(cx) {
            return Poll::Ready(None);
        }
        if !stopping && stop.as_mut().poll(cx).is_ready() {
            stopping = true;
            conn.as_mut().graceful_shutdown();
            return conn.as_mut().poll(cx).map(Some);
        }
        Poll::Pending
    })
    .await;
    match result {
        // The first request never came.
        None => registration.failed(),
        // An error while shutting down is the shutdown cutting the
        // connection short (an idle one still detecting its protocol).
        Some(Err(_)) if !stopping => registration.failed(),
        Some(_) => {}
    }
}

/// A service that notes its first call: the first request has arrived.
struct FirstRequest<S> {
    inner: S,
    started: Rc<Cell<bool>>,
}

impl<S: Service<R>, R> Service<R> for FirstRequest<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, request: R) -> S::Future {
        self.started.set(true);
        self.inner.call(request)
    }
}

/// Accept errors that concern one connection, not the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
