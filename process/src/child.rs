//! A running child: its pipes, its end, and what dropping it does.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::process::{ExitStatus, Output};
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use futures_util::io::AsyncReadExt;
use tarn_reactor::Async;

use crate::exit::{self, Exit};

/// A child process started by [`Command::spawn`](crate::Command::spawn).
///
/// Its pipes, for the streams the command asked to be
/// [`piped`](crate::Stdio::piped), are in [`stdin`](Self::stdin),
/// [`stdout`](Self::stdout) and [`stderr`](Self::stderr): take them out to
/// write and read while the child runs. [`status`](Self::status) waits for
/// the end without blocking the thread, woken through a pidfd registered
/// with the reactor (or `SIGCHLD` where the kernel has no pidfds).
///
/// Dropping a `Child` does not wait for it and, unless
/// [`kill_on_drop`](crate::Command::kill_on_drop) was asked for, does not
/// stop it: it runs on, and is reaped once it ends, so it leaves no zombie.
///
/// ```
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
/// use tarn_process::{Command, Stdio};
///
/// tarn_executor::block_on(async {
///     let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
///     let mut stdin = child.stdin.take().unwrap();
///     stdin.write_all(b"hello").await?;
///     drop(stdin); // cat ends at end of input
///     let mut echoed = String::new();
///     child.stdout.take().unwrap().read_to_string(&mut echoed).await?;
///     assert_eq!(echoed, "hello");
///     assert!(child.status().await?.success());
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub struct Child {
    /// The child's write end of its standard input, if piped.
    pub stdin: Option<ChildStdin>,
    /// The read end of its standard output, if piped.
    pub stdout: Option<ChildStdout>,
    /// The read end of its standard error, if piped.
    pub stderr: Option<ChildStderr>,
    /// The process, until it is reaped.
    running: Option<Running>,
    /// Its status, once reaped.
    status: Option<ExitStatus>,
    pid: u32,
    kill_on_drop: bool,
}

/// A child not reaped yet, and the watch on its end.
#[derive(Debug)]
struct Running {
    child: std::process::Child,
    exit: Exit,
}

impl Child {
    /// Wraps a child std has just started: its pipes made non-blocking and
    /// registered, its end watched. On an error the child is killed and
    /// reaped (it was never handed out).
    pub(crate) fn new(mut child: std::process::Child, kill_on_drop: bool) -> io::Result<Child> {
        let pid = child.id();
        let watched = (|| {
            let exit = Exit::watch(pid)?;
            let stdin = child.stdin.take().map(ChildStdin::new).transpose()?;
            let stdout = child.stdout.take().map(ChildStdout::new).transpose()?;
            let stderr = child.stderr.take().map(ChildStderr::new).transpose()?;
            Ok((exit, stdin, stdout, stderr))
        })();
        match watched {
            Ok((exit, stdin, stdout, stderr)) => Ok(Child {
                stdin,
                stdout,
                stderr,
                running: Some(Running { child, exit }),
                status: None,
                pid,
                kill_on_drop,
            }),
            Err(e) => {
                // Nobody can wait for it: end it here (SIGKILL takes
                // effect at once, so the wait is short).
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// The child's process id. Once the child has been reaped (its status
    /// returned), the id may belong to another process.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Sends `SIGKILL` to the child. `Ok` if it has ended already.
    ///
    /// # Errors
    ///
    /// What `kill(2)` reports (`EPERM` for a child that changed its
    /// credentials, say).
    pub fn kill(&mut self) -> io::Result<()> {
        match &mut self.running {
            Some(running) => running.child.kill(),
            None => Ok(()),
        }
    }

    /// The child's status if it has ended (reaping it), `None` if it is
    /// still running. Never blocks.
    ///
    /// # Errors
    ///
    /// What `waitpid(2)` reports, `ECHILD` if something else reaped the
    /// child (a `SIGCHLD` set to be ignored, a `waitpid(-1)` elsewhere).
    pub fn try_status(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let Some(running) = &mut self.running else {
            return Ok(None);
        };
        let status = running.child.try_wait()?;
        if let Some(status) = status {
            self.reaped(status);
        }
        Ok(status)
    }

    /// `Ready` with the child's status once it has ended (it is reaped
    /// then); otherwise `cx` is woken when it ends.
    ///
    /// Unlike [`status`](Self::status) it leaves the child's standard
    /// input open.
    ///
    /// # Errors
    ///
    /// As for [`try_status`](Self::try_status).
    pub fn poll_status(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        if let Some(status) = self.status {
            return Poll::Ready(Ok(status));
        }
        let Some(running) = &mut self.running else {
            return Poll::Ready(Err(io::Error::other(
                "the child was neither running nor reaped",
            )));
        };
        let status = std::task::ready!(running.exit.poll_reap(&mut running.child, cx))?;
        self.reaped(status);
        Poll::Ready(Ok(status))
    }

    /// Waits for the child to end and returns its status. Closes the
    /// child's standard input first (if it was piped and is still here),
    /// so a child that reads to the end of its input can end.
    ///
    /// Cancel-safe: dropping the future leaves the child as it was, to be
    /// waited for again.
    ///
    /// # Errors
    ///
    /// As for [`try_status`](Self::try_status).
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        poll_fn(|cx| self.poll_status(cx)).await
    }

    /// Waits for the child to end, reading all of its standard output and
    /// error meanwhile (those that were piped; the others come back
    /// empty). Closes its standard input first, as [`status`](Self::status)
    /// does.
    ///
    /// # Errors
    ///
    /// A read error from either pipe, or as for [`try_status`](Self::try_status).
    pub async fn output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let out = self.stdout.take();
        let err = self.stderr.take();
        let read_out = async {
            if let Some(mut out) = out {
                out.read_to_end(&mut stdout).await?;
            }
            io::Result::Ok(())
        };
        let read_err = async {
            if let Some(mut err) = err {
                err.read_to_end(&mut stderr).await?;
            }
            io::Result::Ok(())
        };
        futures_util::future::try_join(read_out, read_err).await?;
        let status = self.status().await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Whether the child's end is watched through a pidfd (`false`: through
    /// `SIGCHLD`, on a kernel without pidfds or one that refused them).
    pub fn watched_by_pidfd(&self) -> bool {
        self.running.as_ref().is_some_and(|r| r.exit.is_pidfd())
    }

    fn reaped(&mut self, status: ExitStatus) {
        self.status = Some(status);
        // The pidfd (or SIGCHLD listener) goes now, not with the Child.
        self.running = None;
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        if self.kill_on_drop {
            let _ = running.child.kill();
        }
        // Otherwise it ended and is reaped now, or was reaped elsewhere:
        // nothing to wait for.
        if let Ok(None) = running.child.try_wait() {
            exit::adopt(running.child, running.exit);
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.pid)
            .field("status", &self.status)
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}

/// Defines a pipe end type over `Async<std::process::$std>`.
macro_rules! pipe_end {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name {
            io: Async<std::process::$name>,
        }

        impl $name {
            fn new(io: std::process::$name) -> io::Result<$name> {
                Ok($name { io: Async::new(io)? })
            }

            /// The std pipe end, taken off the reactor. It stays
            /// non-blocking.
            ///
            /// # Errors
            ///
            /// If the reactor cannot let go of it.
            pub fn into_std(self) -> io::Result<std::process::$name> {
                self.io.into_inner()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.io.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.io.as_raw_fd()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("fd", &self.io.as_raw_fd())
                    .finish()
            }
        }
    };
}

pipe_end! {
    /// The parent's end of a child's standard input: an [`AsyncWrite`].
    /// Dropping it closes the pipe, which the child reads as end of input.
    ChildStdin
}

pipe_end! {
    /// The parent's end of a child's standard output: an [`AsyncRead`]
    /// that reaches end of file once the child (and every process it
    /// passed the pipe to) has closed it.
    ChildStdout
}

pipe_end! {
    /// The parent's end of a child's standard error: an [`AsyncRead`].
    ChildStderr
}

impl AsyncWrite for ChildStdin {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_close(cx)
    }
}

/// `AsyncRead` for a read end, through its `Async`.
macro_rules! read_end {
    ($name:ident) => {
        impl AsyncRead for $name {
            fn poll_read(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.io).poll_read(cx, buf)
            }
        }
    };
}

read_end!(ChildStdout);
read_end!(ChildStderr);
