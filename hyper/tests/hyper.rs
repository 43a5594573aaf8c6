//! tarn-hyper end to end: hyper servers and clients on tarn's sockets,
//! timers and executor; HTTP/1.1 and HTTP/2; graceful shutdown; the header
//! read timeout; upgrades back to futures-io; the timer's reset.
//!
//! `on_poll_and_select_backends` re-runs this binary with
//! `TARN_SELECTOR=poll` and `=select`, so every test runs on every backend.

use std::cell::Cell;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::rt::Timer as _;
use hyper::{Request, Response, StatusCode};
use tarn::channel::oneshot;
use tarn::net::{TcpListener, TcpStream};
use tarn::prelude::*;
use tarn_hyper::{Served, Server, TarnIo, TarnTimer};
use tarn_test_support::{rerun_on_poll_and_select, watchdog};

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", Some(2));
}

/// `GET /` says hello, `GET /slow?ms=N` answers after N ms, `POST /echo`
/// streams the body back; the responses are `!Send` on purpose (an `Rc`
/// lives across the await), which tarn's executor allows for HTTP/2 too.
async fn route(
    request: Request<Incoming>,
) -> Result<Response<http_body_util::combinators::UnsyncBoxBody<Bytes, hyper::Error>>, Infallible> {
    let local = Rc::new(());
    let body = match request.uri().path() {
        "/slow" => {
            let ms: u64 = request.uri().query().unwrap()[3..].parse().unwrap();
            IN_FLIGHT.with(|n| n.set(n.get() + 1));
            MOST_IN_FLIGHT.with(|most| most.set(most.get().max(IN_FLIGHT.with(Cell::get))));
            tarn::Timer::after(Duration::from_millis(ms)).await;
            IN_FLIGHT.with(|n| n.set(n.get() - 1));
            full("done")
        }
        "/panic" => panic!("a handler that panics (on purpose)"),
        "/echo" => request.into_body().boxed_unsync(),
        _ => full("Hello, World!"),
    };
    drop(local);
    Ok(Response::new(body))
}

thread_local! {
    /// `/slow` requests being answered on this thread, and the most at once.
    static IN_FLIGHT: Cell<usize> = const { Cell::new(0) };
    static MOST_IN_FLIGHT: Cell<usize> = const { Cell::new(0) };
}

/// Waits until `n` `/slow` requests are being answered on this thread.
async fn in_flight(n: usize) {
    while IN_FLIGHT.with(Cell::get) < n {
        tarn::Timer::after(Duration::from_millis(1)).await;
    }
}

fn full(text: &'static str) -> http_body_util::combinators::UnsyncBoxBody<Bytes, hyper::Error> {
    Full::new(Bytes::from_static(text.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Starts a server on an ephemeral port; dropping the returned sender
/// starts its shutdown, and the handle yields what it served.
async fn start(
    server: Server,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    tarn::JoinHandle<io::Result<Served>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let service = hyper::service::service_fn(route);
    let task = tarn::spawn(async move { server.serve(listener, service, stopped).await });
    (addr, stop, task)
}

async fn get_http1(addr: SocketAddr, path: &str) -> io::Result<(StatusCode, String)> {
    let mut sender = tarn_hyper::client::http1::<Empty<Bytes>>(addr).await?;
    let request = Request::get(path)
        .header("host", "x")
        .body(Empty::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(io::Error::other)?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(io::Error::other)?;
    Ok((status, String::from_utf8(body.to_bytes().to_vec()).unwrap()))
}

#[test]
fn http1_and_http2_on_one_port() {
    let _watchdog = watchdog("http1_and_http2_on_one_port", Duration::from_secs(30));
    tarn::block_on(async {
        let (addr, stop, server) = start(Server::new()).await;
        assert_eq!(
            get_http1(addr, "/").await.unwrap(),
            (StatusCode::OK, "Hello, World!".into())
        );

        let mut h2 = tarn_hyper::client::http2::<Empty<Bytes>>(addr)
            .await
            .unwrap();
        // Several streams at once on one HTTP/2 connection.
        let requests = (0..8).map(|_| {
            let request = Request::get("http://x/slow?ms=20")
                .body(Empty::new())
                .unwrap();
            h2.send_request(request)
        });
        for response in futures::future::join_all(requests).await {
            let response = response.unwrap();
            assert_eq!(response.version(), hyper::Version::HTTP_2);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"done");
        }
        // Concurrent, not one after the other.
        assert_eq!(MOST_IN_FLIGHT.with(Cell::get), 8);
        drop(h2);
        drop(stop);
        let served = server.await.unwrap().unwrap();
        assert_eq!(served.accepted, 2);
        assert_eq!(served.dropped, 0);
    });
}

#[test]
fn a_streamed_post_comes_back_whole() {
    let _watchdog = watchdog("a_streamed_post_comes_back_whole", Duration::from_secs(30));
    tarn::block_on(async {
        let (addr, stop, server) = start(Server::new()).await;
        let data: Vec<u8> = (0..4 * 1024 * 1024u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut sender = tarn_hyper::client::http1::<Full<Bytes>>(addr)
            .await
            .unwrap();
        let request = Request::post("/echo")
            .header("host", "x")
            .body(Full::new(Bytes::from(data.clone())))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), data.len());
        assert!(body[..] == data[..]);
        drop((sender, stop));
        server.await.unwrap().unwrap();
    });
}

#[test]
fn shutdown_finishes_requests_in_flight_and_refuses_new_connections() {
    let _watchdog = watchdog(
        "shutdown_finishes_requests_in_flight_and_refuses_new_connections",
        Duration::from_secs(30),
    );
    tarn::block_on(async {
        let (addr, stop, server) = start(Server::new()).await;
        let slow = tarn::spawn(get_http1(addr, "/slow?ms=300"));
        // An idle keep-alive connection: shutdown closes it at once.
        let idle = tarn_hyper::client::http1::<Empty<Bytes>>(addr)
            .await
            .unwrap();
        in_flight(1).await;
        drop(stop);
        // The server task runs once to see the stop and close its listener.
        tarn::yield_now().await;
        let refused = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(
            refused.kind(),
            io::ErrorKind::ConnectionRefused,
            "{refused}"
        );
        assert_eq!(
            slow.await.unwrap().unwrap(),
            (StatusCode::OK, "done".into())
        );
        let served = server.await.unwrap().unwrap();
        assert_eq!((served.accepted, served.dropped), (2, 0), "{served}");
        drop(idle);
    });
}

#[test]
fn shutdown_drops_what_outlasts_the_grace_period() {
    let _watchdog = watchdog(
        "shutdown_drops_what_outlasts_the_grace_period",
        Duration::from_secs(30),
    );
    tarn::block_on(async {
        let server = Server::new().grace_period(Duration::from_millis(100));
        let (addr, stop, server) = start(server).await;
        let slow = tarn::spawn(get_http1(addr, "/slow?ms=5000"));
        in_flight(1).await;
        drop(stop);
        let served = server.await.unwrap().unwrap();
        assert_eq!((served.accepted, served.dropped), (1, 1), "{served}");
        // The dropped connection closed: the client sees an error, soon.
        let result = tarn::timeout(Duration::from_secs(2), slow).await.unwrap();
        assert!(result.unwrap().is_err());
    });
}

#[test]
fn a_request_head_that_never_ends_times_out() {
    let _watchdog = watchdog(
        "a_request_head_that_never_ends_times_out",
        Duration::from_secs(30),
    );
    tarn::block_on(async {
        let mut server = Server::new();
        server
            .http()
            .http1()
            .header_read_timeout(Duration::from_millis(200));
        let (addr, _stop, _server) = start(server).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let start = Instant::now();
        let mut rest = Vec::new();
        let read = tarn::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest)).await;
        // hyper answers 408 or just closes; either way the connection ends
        // after the timeout, not at the 5 s bound.
        assert!(read.is_ok(), "the server never closed the connection");
        assert!(
            start.elapsed() >= Duration::from_millis(190),
            "{:?}",
            start.elapsed()
        );
    });
}

#[test]
fn an_upgraded_connection_is_futures_io() {
    let _watchdog = watchdog(
        "an_upgraded_connection_is_futures_io",
        Duration::from_secs(30),
    );
    tarn::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = hyper::service::service_fn(|mut request: Request<Incoming>| async move {
            // After the 101, echo one line in upper case over the raw stream.
            tarn::spawn(async move {
                let upgraded = hyper::upgrade::on(&mut request).await.unwrap();
                let mut io = TarnIo::new(upgraded);
                let mut line = [0; 5];
                io.read_exact(&mut line).await.unwrap();
                io.write_all(&line.to_ascii_uppercase()).await.unwrap();
                io.flush().await.unwrap();
            })
            .detach();
            let response = Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "shout")
                .body(Empty::<Bytes>::new())
                .unwrap();
            Ok::<_, Infallible>(response)
        });
        let (_stop, stopped) = oneshot::channel::<()>();
        tarn::spawn(Server::new().serve(listener, service, stopped)).detach();

        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(
            b"GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: shout\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            conn.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        conn.write_all(b"hello").await.unwrap();
        let mut reply = [0; 5];
        conn.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"HELLO");
    });
}

#[test]
fn a_refused_connect_names_the_address() {
    tarn::block_on(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = tarn_hyper::client::http1::<Empty<Bytes>>(port)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert!(e.to_string().contains(&port.to_string()), "{e}");
    });
}

#[test]
fn reset_moves_the_same_sleep() {
    let _watchdog = watchdog("reset_moves_the_same_sleep", Duration::from_secs(30));
    tarn::block_on(async {
        let mut sleep = TarnTimer.sleep(Duration::from_secs(3600));
        let before: *const () = (&*sleep as *const dyn hyper::rt::Sleep).cast();
        let deadline = Instant::now() + Duration::from_millis(20);
        TarnTimer.reset(&mut sleep, deadline);
        let after: *const () = (&*sleep as *const dyn hyper::rt::Sleep).cast();
        assert_eq!(before, after, "reset allocated a new sleep");
        Pin::as_mut(&mut sleep).await;
        assert!(Instant::now() >= deadline);
    });
}

#[test]
fn shutdown_lets_http2_streams_in_flight_finish() {
    let _watchdog = watchdog(
        "shutdown_lets_http2_streams_in_flight_finish",
        Duration::from_secs(30),
    );
    tarn::block_on(async {
        let (addr, stop, server) = start(Server::new()).await;
        let mut h2 = tarn_hyper::client::http2::<Empty<Bytes>>(addr)
            .await
            .unwrap();
        let requests: Vec<_> = (0..3)
            .map(|_| {
                let request = Request::get("http://x/slow?ms=300")
                    .body(Empty::new())
                    .unwrap();
                tarn::spawn(h2.send_request(request))
            })
            .collect();
        in_flight(3).await;
        drop(stop);
        for request in requests {
            let response = request.await.unwrap().unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"done");
        }
        let served = server.await.unwrap().unwrap();
        assert_eq!((served.accepted, served.dropped), (1, 0), "{served}");
    });
}

/// A futures-io reader that claims to have read more than it was given.
struct OverReporting;

impl tarn::io::AsyncRead for OverReporting {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::Poll::Ready(Ok(buf.len() + 1000))
    }
}

#[test]
fn a_reader_that_over_reports_is_an_error_not_uninitialised_data() {
    use hyper::rt::Read as _;
    let mut storage = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
    let mut buf = hyper::rt::ReadBuf::uninit(&mut storage);
    let mut io = TarnIo::new(OverReporting);
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let poll = Pin::new(&mut io).poll_read(&mut cx, buf.unfilled());
    let std::task::Poll::Ready(result) = poll else {
        panic!("pending")
    };
    let e = result.expect_err("an impossible read count was accepted");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(
        e.to_string()
            .contains("17384 bytes read into a 16384-byte buffer"),
        "{e}"
    );
    assert!(buf.filled().is_empty());
}

/// Reads until the server closes the connection; fails after 10 s.
async fn closed_by_server(conn: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut rest = Vec::new();
    let read = tarn::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the server never closed the connection");
    start.elapsed()
}

#[test]
fn a_connection_that_never_sends_a_request_is_closed_after_the_first_request_timeout() {
    let _watchdog = watchdog("first_request_timeout", Duration::from_secs(60));
    tarn::block_on(async {
        let server = Server::new().first_request_timeout(Duration::from_millis(200));
        let (addr, stop, server) = start(server).await;
        // Silent; half an HTTP/2 preface; half a request head.
        for opening in [
            &b""[..],
            b"PRI * HTTP/2.0",
            b"GET / HTTP/1.1\r\nhost: x\r\n",
        ] {
            let mut conn = TcpStream::connect(addr).await.unwrap();
            conn.write_all(opening).await.unwrap();
            let after = closed_by_server(&mut conn).await;
            assert!(
                after >= Duration::from_millis(190),
                "closed after {after:?}"
            );
        }
        // A first request in time is served, however long it then takes.
        let (status, body) = get_http1(addr, "/slow?ms=400").await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
        drop(stop);
        let served = server.await.unwrap().unwrap();
        assert_eq!((served.accepted, served.failed), (4, 3), "{served}");
    });
}

/// A listener that says when it has handed out a connection.
struct Primed {
    listener: TcpListener,
    handed_out: Rc<Cell<bool>>,
}

impl tarn_hyper::Accept for Primed {
    type Conn = TcpStream;

    async fn accept(&self) -> io::Result<TcpStream> {
        let (conn, _) = self.listener.accept().await?;
        self.handed_out.set(true);
        Ok(conn)
    }
}

#[test]
fn a_request_that_arrived_before_shutdown_is_served() {
    let _watchdog = watchdog("arrived_before_shutdown", Duration::from_secs(30));
    tarn::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /slow?ms=50 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let handed_out = Rc::new(Cell::new(false));
        let listener = Primed {
            listener,
            handed_out: Rc::clone(&handed_out),
        };
        // Shutdown begins the moment the connection is accepted, before its
        // task has ever run.
        let shutdown = std::future::poll_fn(move |_| match handed_out.get() {
            true => std::task::Poll::Ready(()),
            false => std::task::Poll::Pending,
        });
        let service = hyper::service::service_fn(route);
        let server = tarn::spawn(Server::new().serve(listener, service, shutdown));
        let mut response = String::new();
        client.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response:?}");
        assert!(response.ends_with("done"), "{response:?}");
        let served = server.await.unwrap().unwrap();
        let counts = (served.accepted, served.failed, served.dropped);
        assert_eq!(counts, (1, 0, 0), "{served}");
    });
}

#[test]
fn an_idle_connection_closed_by_shutdown_is_no_failure() {
    let _watchdog = watchdog("idle_connection_shutdown", Duration::from_secs(30));
    tarn::block_on(async {
        let (addr, stop, server) = start(Server::new()).await;
        // One that never sent a byte, one kept alive after a request.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut kept = tarn_hyper::client::http1::<Empty<Bytes>>(addr)
            .await
            .unwrap();
        let request = Request::get("/")
            .header("host", "x")
            .body(Empty::new())
            .unwrap();
        kept.send_request(request).await.unwrap();
        drop(stop);
        closed_by_server(&mut silent).await;
        let served = server.await.unwrap().unwrap();
        assert_eq!((served.accepted, served.failed), (2, 0), "{served}");
    });
}

#[test]
fn a_panicking_handler_fails_its_connection_and_leaves_nothing_behind() {
    let _watchdog = watchdog("panicking_handler", Duration::from_secs(30));
    tarn::block_on(async {
        let (addr, stop, server) = start(Server::new()).await;
        for _ in 0..3 {
            assert!(get_http1(addr, "/panic").await.is_err());
        }
        assert_eq!(get_http1(addr, "/").await.unwrap().0, StatusCode::OK);
        drop(stop);
        let served = server.await.unwrap().unwrap();
        assert_eq!((served.accepted, served.failed), (4, 3), "{served}");
    });
}

#[test]
fn dropping_the_serve_future_closes_its_connections() {
    let _watchdog = watchdog("dropping_serve", Duration::from_secs(30));
    tarn::block_on(async {
        let (addr, _stop, server) = start(Server::new()).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0; 15];
        conn.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200 OK");
        server.abort();
        // The kept-alive connection goes with the server.
        closed_by_server(&mut conn).await;
    });
}
