//! tarn's child processes: [`Command`], std's builder, whose
//! [`spawn`](Command::spawn) gives a [`Child`] with async pipes
//! (`futures-io`'s `AsyncRead` / `AsyncWrite`) and an end that is awaited,
//! not blocked on: [`Child::status`], [`Child::output`], [`Command::status`]
//! and [`Command::output`].
//!
//! No helper thread: the child's pidfd (Linux 5.3 and later) is registered
//! with the reactor like a socket, and wakes the waiting task when the
//! child ends; where the kernel has no pidfds, `SIGCHLD` (through
//! `tarn::signal`) does. A child dropped while it runs goes on running and
//! is reaped once it ends, so none is left a zombie; with
//! [`kill_on_drop`](Command::kill_on_drop) it is killed instead. It all
//! works under any executor, as tarn's sockets do.
//!
//! ```
//! use tarn_process::Command;
//!
//! tarn_executor::block_on(async {
//!     let out = Command::new("echo").arg("hello").output().await?;
//!     assert!(out.status.success());
//!     assert_eq!(out.stdout, b"hello\n");
//!
//!     let status = Command::new("false").status().await?;
//!     assert_eq!(status.code(), Some(1));
//!
//!     let missing = Command::new("no-such-program-here").status().await.unwrap_err();
//!     assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
//!     assert!(missing.to_string().contains("no-such-program-here"));
//!     std::io::Result::Ok(())
//! })?;
//! # std::io::Result::Ok(())
//! ```

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod child;
mod exit;
mod sys;

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::Path;

pub use child::{Child, ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{ExitStatus, Output, Stdio};

/// A process to start: std's [`Command`](std::process::Command) builder,
/// with an async [`spawn`](Self::spawn), [`status`](Self::status) and
/// [`output`](Self::output).
///
/// As with std, the standard streams are inherited unless set, except in
/// [`output`](Self::output), which captures standard output and error and
/// gives the child no input. A spawn that fails names the program in its
/// error (`cannot run "prog": No such file or directory`).
///
/// ```
/// use tarn_process::{Command, Stdio};
///
/// tarn_executor::block_on(async {
///     let mut child = Command::new("sleep").arg("30").kill_on_drop(true).spawn()?;
///     child.kill()?;
///     let status = child.status().await?;
///     assert!(!status.success()); // ended by SIGKILL
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub struct Command {
    inner: std::process::Command,
    kill_on_drop: bool,
    /// Whether `stdin`, `stdout`, `stderr` were set (for `output`'s
    /// defaults).
    set: [bool; 3],
}

impl Command {
    /// A command to run `program`, looked up in `PATH` if it has no `/`,
    /// with no arguments, this process's environment and working
    /// directory, and inherited standard streams.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env(key, value);
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Gives the child an empty environment (before the `env` calls).
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// What the child's standard input is: [`Stdio::piped`] for a
    /// [`ChildStdin`] in [`Child::stdin`], [`Stdio::null`], or inherited
    /// (the default).
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdin(cfg);
        self.set[0] = true;
        self
    }

    /// What the child's standard output is ([`Stdio::piped`] for a
    /// [`ChildStdout`] in [`Child::stdout`]).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdout(cfg);
        self.set[1] = true;
        self
    }

    /// What the child's standard error is ([`Stdio::piped`] for a
    /// [`ChildStderr`] in [`Child::stderr`]).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stderr(cfg);
        self.set[2] = true;
        self
    }

    /// Whether dropping the [`Child`] before it was reaped sends it
    /// `SIGKILL` (default `false`: it runs on, and is reaped when it ends).
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Command {
        self.kill_on_drop = kill;
        self
    }

    /// The std builder underneath, for what this one does not wrap
    /// (`std::os::unix::process::CommandExt`: `uid`, `process_group`,
    /// `pre_exec`, ...).
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }

    /// Starts the child.
    ///
    /// Registers its pipes and its pidfd with the reactor of the calling
    /// thread (or the shared one), and reaps the dropped children that
    /// have ended since.
    ///
    /// # Errors
    ///
    /// `NotFound` for a program that does not exist, `PermissionDenied`
    /// for one that may not be run, each naming the program; or the
    /// reactor's error registering the pipes or the pidfd (the child is
    /// then killed and reaped before this returns).
    pub fn spawn(&mut self) -> io::Result<Child> {
        exit::reap_orphans();
        let child = self.inner.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run {:?}: {e}", self.inner.get_program()),
            )
        })?;
        Child::new(child, self.kill_on_drop)
    }

    /// Runs the child to its end, with its standard streams as set
    /// (inherited by default), and returns its status.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Self::spawn) and [`Child::status`].
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.status().await
    }

    /// Runs the child to its end, capturing its standard output and error,
    /// and returns them with its status. Unless set otherwise, the child's
    /// standard input is null and its standard output and error are piped;
    /// those defaults stay set on this `Command` for later spawns, as they
    /// were when `output` was called.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Self::spawn) and [`Child::output`].
    pub async fn output(&mut self) -> io::Result<Output> {
        if !self.set[0] {
            self.stdin(Stdio::null());
        }
        if !self.set[1] {
            self.stdout(Stdio::piped());
        }
        if !self.set[2] {
            self.stderr(Stdio::piped());
        }
        self.spawn()?.output().await
    }
}

impl From<std::process::Command> for Command {
    /// Wraps a std builder. std cannot tell which standard streams it set,
    /// so [`output`](Command::output) applies its defaults to those not
    /// set through this wrapper.
    fn from(inner: std::process::Command) -> Command {
        Command {
            inner,
            kill_on_drop: false,
            set: [false; 3],
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("program", &self.inner.get_program())
            .field("args", &self.inner.get_args().collect::<Vec<_>>())
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}

/// How many dropped children are still running (waiting to be reaped
/// when they end): what [`Child`]'s drop leaves behind.
pub fn orphans() -> usize {
    exit::orphans()
}
