//! An open file whose reads and writes run on the blocking pool, in chunks.
//!
//! A `File` is in one of two states. Idle, it holds its buffer: bytes read
//! ahead and not yet given out, or bytes written and not yet sent to the
//! file. Busy, the buffer and the file are with a pool job (a read of at
//! least a chunk, a write of what was gathered, a seek), and the next call
//! waits for it. So a read asks the pool for [`CHUNK`] bytes however few
//! the caller wants, and writes are gathered until a chunk is full (or a
//! flush, a seek, a read or the drop sends them). The file's position is
//! kept right: before a write or a seek, bytes read ahead are given back
//! by seeking over them.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead, AsyncSeek, AsyncWrite};
use tarn_blocking::Unblock;

use crate::{at_path, Metadata, Permissions};

/// How many bytes a `File` moves per pool job at least: a read fetches
/// this much (or the caller's whole buffer, if larger), and writes are
/// gathered until this much is waiting.
pub const CHUNK: usize = 128 * 1024;

/// The most one job moves: a larger read buffer or write is cut to this.
const MAX_JOB: usize = 2 * 1024 * 1024;

/// An open file, read and written through the blocking pool: `futures-io`'s
/// [`AsyncRead`], [`AsyncWrite`] and [`AsyncSeek`].
///
/// Small reads and writes are gathered into [`CHUNK`]-sized pool jobs (see
/// the crate docs). Written bytes reach the file when a chunk fills, on a
/// flush or a close ([`AsyncWrite::poll_flush`], [`AsyncWrite::poll_close`];
/// `flush().await` with futures' `AsyncWriteExt`), before a read or seek, and
/// when the `File` is dropped (that last write's error, if any, has nobody
/// to go to: flush or close to see it). An error of a write that ran in
/// the background is returned by the next call.
///
/// ```
/// use futures::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
/// use futures::StreamExt;
///
/// tarn_executor::block_on(async {
///     let path = std::env::temp_dir().join(format!("tarn-file-doc-{}", std::process::id()));
///     let mut file = tarn_fs::File::create(&path).await?;
///     for i in 0..1000 {
///         file.write_all(format!("line {i}\n").as_bytes()).await?;
///     }
///     file.close().await?;
///
///     // A BufReader's 8 KiB reads are served from the File's 128 KiB chunks.
///     let lines = BufReader::new(tarn_fs::File::open(&path).await?).lines();
///     assert_eq!(lines.count().await, 1000);
///     tarn_fs::remove_file(&path).await
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub struct File {
    state: State,
    /// The file itself, for the calls that need no position (metadata,
    /// sync, set_len); the same one the idle or busy `Inner` holds.
    std: Arc<std::fs::File>,
    path: Option<Arc<Path>>,
}

enum State {
    /// The buffer and the file are here. `None` once they were lost with a
    /// job the pool refused (no thread could start).
    Idle(Option<Inner>),
    /// A job has them.
    Busy(Unblock<(Inner, Done)>),
}

/// What travels to the pool and back.
struct Inner {
    file: Arc<std::fs::File>,
    path: Option<Arc<Path>>,
    buf: Vec<u8>,
    /// In `Mode::Read`, where the bytes not yet given out start.
    pos: usize,
    mode: Mode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The buffer holds nothing.
    Empty,
    /// `buf[pos..]` was read ahead: the file's position is past it.
    Read,
    /// `buf` was written and waits to be sent.
    Write,
}

/// What a job did.
enum Done {
    Read(io::Result<usize>),
    Write(io::Result<()>),
    /// A seek asked for by `poll_seek`.
    Seek(io::Result<u64>),
    /// A seek back over bytes read ahead, before a write.
    Rewind(io::Result<u64>),
}

impl Inner {
    fn error(&self, e: io::Error, what: &str) -> io::Error {
        match &self.path {
            Some(path) => at_path(e, what, path),
            None => e,
        }
    }

    fn read(mut self, want: usize) -> (Inner, Done) {
        self.buf.clear();
        self.buf.resize(want, 0);
        self.pos = 0;
        let res = loop {
            match (&*self.file).read(&mut self.buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                res => break res,
            }
        };
        let n = *res.as_ref().unwrap_or(&0);
        self.buf.truncate(n);
        self.mode = if n > 0 { Mode::Read } else { Mode::Empty };
        let res = res.map_err(|e| self.error(e, "read"));
        (self, Done::Read(res))
    }

    fn write(mut self) -> (Inner, Done) {
        let res = (&*self.file).write_all(&self.buf);
        self.buf.clear();
        self.mode = Mode::Empty;
        let res = res.map_err(|e| self.error(e, "write"));
        (self, Done::Write(res))
    }

    fn seek(mut self, to: SeekFrom, rewind: bool) -> (Inner, Done) {
        self.buf.clear();
        self.mode = Mode::Empty;
        let res = (&*self.file).seek(to).map_err(|e| self.error(e, "seek in"));
        let done = if rewind {
            Done::Rewind(res)
        } else {
            Done::Seek(res)
        };
        (self, done)
    }

    /// Bytes read ahead and not given out.
    fn unread(&self) -> usize {
        match self.mode {
            Mode::Read => self.buf.len() - self.pos,
            _ => 0,
        }
    }
}

fn lost() -> io::Error {
    io::Error::other("this File was lost with a job the blocking pool could not run")
}

impl File {
    /// Opens a file for reading.
    ///
    /// # Errors
    ///
    /// As `std::fs::File::open`, naming the path.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Creates a file for writing, truncating it if it exists.
    ///
    /// # Errors
    ///
    /// As `std::fs::File::create`, naming the path.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Wraps an open std file (its errors then name no path).
    pub fn from_std(file: std::fs::File) -> File {
        File::new(file, None)
    }

    fn new(file: std::fs::File, path: Option<Arc<Path>>) -> File {
        let file = Arc::new(file);
        File {
            state: State::Idle(Some(Inner {
                file: Arc::clone(&file),
                path: path.clone(),
                buf: Vec::new(),
                pos: 0,
                mode: Mode::Empty,
            })),
            std: file,
            path,
        }
    }

    /// The file's metadata.
    ///
    /// # Errors
    ///
    /// As `std::fs::File::metadata`, naming the path.
    pub async fn metadata(&self) -> io::Result<Metadata> {
        self.on_file("stat", |file| file.metadata()).await
    }

    /// Sends what is gathered, then waits until the file's data and
    /// metadata are on the device (`fsync`).
    ///
    /// # Errors
    ///
    /// A write's error, or as `std::fs::File::sync_all`, naming the path.
    pub async fn sync_all(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_flush_inner(cx)).await?;
        self.on_file("sync", |file| file.sync_all()).await
    }

    /// Like [`sync_all`](Self::sync_all), without waiting for metadata that
    /// reading the data back does not need (`fdatasync`).
    ///
    /// # Errors
    ///
    /// A write's error, or as `std::fs::File::sync_data`, naming the path.
    pub async fn sync_data(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_flush_inner(cx)).await?;
        self.on_file("sync", |file| file.sync_data()).await
    }

    /// Sends what is gathered, then truncates or extends the file to
    /// `size` bytes.
    ///
    /// # Errors
    ///
    /// A write's error, or as `std::fs::File::set_len`, naming the path.
    pub async fn set_len(&mut self, size: u64) -> io::Result<()> {
        poll_fn(|cx| self.poll_flush_inner(cx)).await?;
        self.on_file("resize", move |file| file.set_len(size)).await
    }

    /// Sets the file's permissions.
    ///
    /// # Errors
    ///
    /// As `std::fs::File::set_permissions`, naming the path.
    pub async fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        self.on_file("set permissions of", move |file| file.set_permissions(perm))
            .await
    }

    /// The std file, once what is gathered has been written and bytes read
    /// ahead given back (so its position is where this `File`'s was).
    ///
    /// # Errors
    ///
    /// A write's or the seek's error.
    pub async fn into_std(mut self) -> io::Result<std::fs::File> {
        poll_fn(|cx| self.poll_settle(cx)).await?;
        // Idle now: drop the job's handle on the file, then take ours.
        self.state = State::Idle(None);
        let std = Arc::clone(&self.std);
        drop(self);
        Arc::try_unwrap(std).map_err(|_| io::Error::other("the file is still in use by a job"))
    }

    /// Runs `op` on the file on the pool, wherever its buffer is.
    async fn on_file<T: Send + 'static>(
        &self,
        what: &'static str,
        op: impl FnOnce(&std::fs::File) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let file = Arc::clone(&self.std);
        let path = self.path.clone();
        tarn_blocking::try_unblock(move || {
            op(&file).map_err(|e| match &path {
                Some(path) => at_path(e, what, path),
                None => e,
            })
        })?
        .await
    }

    /// Hands the idle buffer and file to `job` on the pool.
    fn start(
        &mut self,
        job: impl FnOnce(Inner) -> (Inner, Done) + Send + 'static,
    ) -> io::Result<()> {
        let State::Idle(inner) = &mut self.state else {
            unreachable!("a File starts a job only when idle");
        };
        let inner = inner.take().ok_or_else(lost)?;
        // A refusal drops the job and the buffer with it: the state stays
        // `Idle(None)`, and every later call says the File was lost.
        let job = tarn_blocking::try_unblock(move || job(inner))?;
        self.state = State::Busy(job);
        Ok(())
    }

    /// Waits for the job in flight, if any; its outcome.
    fn poll_job(&mut self, cx: &mut Context<'_>) -> Poll<Option<Done>> {
        let State::Busy(job) = &mut self.state else {
            return Poll::Ready(None);
        };
        let (inner, done) = ready!(Pin::new(job).poll(cx));
        self.state = State::Idle(Some(inner));
        Poll::Ready(Some(done))
    }

    fn idle(&mut self) -> io::Result<&mut Inner> {
        match &mut self.state {
            State::Idle(Some(inner)) => Ok(inner),
            State::Idle(None) => Err(lost()),
            State::Busy(_) => unreachable!("polled the job first"),
        }
    }

    /// Writes what is gathered, waiting for any job in flight; errors of
    /// writes (and seeks) on the way are returned.
    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match ready!(self.poll_job(cx)) {
                Some(Done::Write(Err(e)) | Done::Seek(Err(e)) | Done::Rewind(Err(e))) => {
                    return Poll::Ready(Err(e))
                }
                Some(_) => continue,
                None => {}
            }
            let inner = self.idle()?;
            if inner.mode == Mode::Write && !inner.buf.is_empty() {
                self.start(Inner::write)?;
                continue;
            }
            return Poll::Ready(Ok(()));
        }
    }

    /// Like `poll_flush_inner`, then gives back bytes read ahead: the
    /// file's position is then this `File`'s.
    fn poll_settle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_flush_inner(cx))?;
            let inner = self.idle()?;
            let unread = inner.unread();
            if unread == 0 {
                inner.buf.clear();
                inner.mode = Mode::Empty;
                return Poll::Ready(Ok(()));
            }
            let back = SeekFrom::Current(-(unread as i64));
            self.start(move |inner| inner.seek(back, true))?;
        }
    }
}

impl AsyncRead for File {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            match ready!(this.poll_job(cx)) {
                Some(Done::Read(Ok(0))) => return Poll::Ready(Ok(0)),
                Some(
                    Done::Read(Err(e))
                    | Done::Write(Err(e))
                    | Done::Seek(Err(e))
                    | Done::Rewind(Err(e)),
                ) => return Poll::Ready(Err(e)),
                Some(_) | None => {}
            }
            let inner = this.idle()?;
            match inner.mode {
                Mode::Read if inner.pos < inner.buf.len() => {
                    let n = out.len().min(inner.buf.len() - inner.pos);
                    out[..n].copy_from_slice(&inner.buf[inner.pos..inner.pos + n]);
                    inner.pos += n;
                    return Poll::Ready(Ok(n));
                }
                // What is gathered goes first.
                Mode::Write if !inner.buf.is_empty() => this.start(Inner::write)?,
                _ => {
                    if out.is_empty() {
                        return Poll::Ready(Ok(0));
                    }
                    let want = out.len().clamp(CHUNK, MAX_JOB);
                    this.start(move |inner| inner.read(want))?;
                }
            }
        }
    }
}

impl AsyncWrite for File {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            let done = ready!(this.poll_job(cx));
            if let Some(Done::Write(Err(e)) | Done::Seek(Err(e)) | Done::Rewind(Err(e))) = done {
                return Poll::Ready(Err(e));
            }
            let inner = this.idle()?;
            let unread = inner.unread();
            if unread > 0 {
                // The file's position is past bytes read ahead: go back to
                // where the caller is before writing there.
                let back = SeekFrom::Current(-(unread as i64));
                this.start(move |inner| inner.seek(back, true))?;
                continue;
            }
            if data.is_empty() {
                return Poll::Ready(Ok(0));
            }
            if inner.mode != Mode::Write {
                inner.buf.clear();
                inner.mode = Mode::Write;
            }
            // A large write goes in one job of its own; small ones gather.
            let cap = if inner.buf.is_empty() && data.len() >= CHUNK {
                MAX_JOB
            } else {
                CHUNK
            };
            let n = (cap - inner.buf.len()).min(data.len());
            inner.buf.extend_from_slice(&data[..n]);
            if inner.buf.len() >= CHUNK {
                this.start(Inner::write)?;
            }
            return Poll::Ready(Ok(n));
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush_inner(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush_inner(cx)
    }
}

impl AsyncSeek for File {
    /// Seeks, once what is gathered has been written. `SeekFrom::Current`
    /// counts from this `File`'s position (bytes read ahead are not
    /// counted as read). If a seek is already in flight (its future
    /// dropped before it was ready), this call returns that seek's result.
    fn poll_seek(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        to: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        let this = &mut *self;
        loop {
            match ready!(this.poll_job(cx)) {
                Some(Done::Seek(res)) => return Poll::Ready(res),
                Some(Done::Write(Err(e)) | Done::Rewind(Err(e))) => return Poll::Ready(Err(e)),
                Some(_) | None => {}
            }
            let inner = this.idle()?;
            if inner.mode == Mode::Write && !inner.buf.is_empty() {
                this.start(Inner::write)?;
                continue;
            }
            let to = match to {
                SeekFrom::Current(off) => SeekFrom::Current(off - inner.unread() as i64),
                other => other,
            };
            this.start(move |inner| inner.seek(to, false))?;
        }
    }
}

impl Drop for File {
    fn drop(&mut self) {
        // What is gathered is written in the background; its error has
        // nobody to go to (flush or close first to see it).
        if let State::Idle(slot) = &mut self.state {
            if let Some(inner) = slot.take_if(|i| i.mode == Mode::Write && !i.buf.is_empty()) {
                let _ = tarn_blocking::try_unblock(move || drop(inner.write()));
            }
        }
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("File");
        d.field("path", &self.path);
        match &self.state {
            State::Idle(Some(inner)) => d
                .field("mode", &inner.mode)
                .field("buffered", &inner.buf.len()),
            State::Idle(None) => d.field("lost", &true),
            State::Busy(_) => d.field("busy", &true),
        };
        d.finish()
    }
}

/// How to open a [`File`]: std's [`OpenOptions`](std::fs::OpenOptions),
/// with an async [`open`](Self::open).
///
/// ```
/// tarn_executor::block_on(async {
///     let path = std::env::temp_dir().join(format!("tarn-open-doc-{}", std::process::id()));
///     let _ = tarn_fs::remove_file(&path).await;
///     let created = tarn_fs::OpenOptions::new().write(true).create_new(true).open(&path).await;
///     assert!(created.is_ok());
///     let again = tarn_fs::OpenOptions::new().write(true).create_new(true).open(&path).await;
///     assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
///     tarn_fs::remove_file(&path).await
/// })?;
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions(std::fs::OpenOptions);

impl OpenOptions {
    /// Options with everything off (set at least `read` or `write`).
    #[allow(clippy::new_without_default)]
    pub fn new() -> OpenOptions {
        OpenOptions(std::fs::OpenOptions::new())
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.0.read(read);
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.0.write(write);
        self
    }

    /// Open for appending: every write goes to the end.
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.0.append(append);
        self
    }

    /// Truncate the file to nothing on opening (needs `write`).
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.0.truncate(truncate);
        self
    }

    /// Create the file if it does not exist (needs `write` or `append`).
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.0.create(create);
        self
    }

    /// Create the file, failing with `AlreadyExists` if it exists.
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.0.create_new(create_new);
        self
    }

    /// Opens `path` with these options.
    ///
    /// # Errors
    ///
    /// As `std::fs::OpenOptions::open`, naming the path.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let options = self.0.clone();
        let path: Arc<Path> = path.as_ref().into();
        let file = {
            let path = Arc::clone(&path);
            tarn_blocking::try_unblock(move || {
                options.open(&path).map_err(|e| at_path(e, "open", &path))
            })?
            .await?
        };
        Ok(File::new(file, Some(path)))
    }
}
