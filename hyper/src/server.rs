//! [`Server`]: an accept loop with a task per connection, HTTP/1.1 and
//! HTTP/2 on one port, and graceful shutdown.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::rc::Rc;
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
/// timer is [`TarnTimer`], so HTTP/1's header read timeout is on (30 s by
/// default: a client that opens a connection and never finishes its
/// request head is dropped).
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
}

/// What a [`Server`] did, returned when it has shut down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Served {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections that ended with an error (a peer that sent garbage or
    /// reset, a timeout, a failed TLS handshake).
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
        }
    }

    /// hyper's connection builder, to tune HTTP/1 and HTTP/2 (for example
    /// `server.http().http1().header_read_timeout(..)`).
    pub fn http(&mut self) -> &mut auto::Builder<TarnExecutor> {
        &mut self.builder
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
        let builder = Rc::new(self.builder);
        let open = Rc::new(RefCell::new(Open::default()));
        let failed = Rc::new(std::cell::Cell::new(0u64));
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
            let task = tarn::spawn(connection(
                handshake(conn),
                service.clone(),
                builder.clone(),
                stopped,
                Rc::clone(&open),
                Rc::clone(&failed),
                id,
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
            failed: failed.get(),
            dropped,
        })
    }
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

/// Serves one connection: its handshake, then HTTP until the peer is done
/// or `stop` fires, after which it finishes what is in flight.
async fn connection<F, IO, S, B>(
    handshake: F,
    service: S,
    builder: Rc<auto::Builder<TarnExecutor>>,
    stop: oneshot::Receiver<()>,
    open: Rc<RefCell<Open>>,
    failed: Rc<std::cell::Cell<u64>>,
    id: u64,
) where
    F: Future<Output = io::Result<IO>>,
    IO: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + 'static,
    S::Future: 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut stop = pin!(stop);
    let ok = async {
        // A shutdown during the handshake ends the connection at once.
        let io = {
            let mut handshake = pin!(handshake);
            poll_fn(|cx| {
                if stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                handshake.as_mut().poll(cx).map(Some)
            })
            .await
        };
        let io = match io {
            None => return true,
            Some(Ok(io)) => io,
            Some(Err(_)) => return false,
        };
        let conn = builder.serve_connection_with_upgrades(TarnIo::new(io), service);
        let mut conn = pin!(conn);
        let mut stopping = false;
        poll_fn(|cx| {
            if !stopping && stop.as_mut().poll(cx).is_ready() {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            conn.as_mut().poll(cx)
        })
        .await
        .is_ok()
    }
    .await;
    if !ok {
        failed.set(failed.get() + 1);
    }
    open.borrow_mut().live.remove(&id);
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
