//! Directory listings as a `Stream`, fetched in batches.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use tarn_blocking::Unblock;

use crate::{at_path, FileType, Metadata};

/// Entries fetched per pool round trip.
const BATCH: usize = 64;

/// The entries of directory `path`, as a [`Stream`] (in the order the
/// system gives them; `.` and `..` left out).
///
/// ```
/// use futures::StreamExt;
///
/// tarn_executor::block_on(async {
///     let mut names = Vec::new();
///     let mut entries = tarn_fs::read_dir(".").await?;
///     while let Some(entry) = entries.next().await {
///         names.push(entry?.file_name());
///     }
///     assert!(names.iter().any(|n| n == "Cargo.toml"));
///     std::io::Result::Ok(())
/// })?;
/// # std::io::Result::Ok(())
/// ```
///
/// # Errors
///
/// As `std::fs::read_dir`, naming the path; an entry that cannot be read
/// is an `Err` item of the stream, naming the directory.
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path: Arc<Path> = path.as_ref().into();
    let dir = {
        let path = Arc::clone(&path);
        tarn_blocking::try_unblock(move || {
            std::fs::read_dir(&path).map_err(|e| at_path(e, "list", &path))
        })?
        .await?
    };
    Ok(ReadDir {
        state: State::Idle(Some(Listing {
            dir,
            entries: VecDeque::new(),
            done: false,
        })),
        path,
    })
}

/// The stream of [`read_dir`].
pub struct ReadDir {
    state: State,
    path: Arc<Path>,
}

enum State {
    /// The listing is here (`None` only while a fetch takes it).
    Idle(Option<Listing>),
    /// A fetch is on the pool.
    Fetching(Unblock<Listing>),
}

struct Listing {
    dir: std::fs::ReadDir,
    entries: VecDeque<io::Result<std::fs::DirEntry>>,
    /// The system's listing has ended.
    done: bool,
}

impl Listing {
    fn fetch(mut self) -> Listing {
        while self.entries.len() < BATCH {
            match self.dir.next() {
                Some(entry) => self.entries.push_back(entry),
                None => {
                    self.done = true;
                    break;
                }
            }
        }
        self
    }
}

impl Stream for ReadDir {
    type Item = io::Result<DirEntry>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Idle(listing) => {
                    let Some(mut current) = listing.take() else {
                        return Poll::Ready(None);
                    };
                    if let Some(entry) = current.entries.pop_front() {
                        *listing = Some(current);
                        let entry = entry.map_err(|e| at_path(e, "list", &this.path));
                        return Poll::Ready(Some(entry.map(|e| DirEntry(Arc::new(e)))));
                    }
                    if current.done {
                        *listing = Some(current);
                        return Poll::Ready(None);
                    }
                    match tarn_blocking::try_unblock(move || current.fetch()) {
                        Ok(fetch) => this.state = State::Fetching(fetch),
                        // The listing went with the refused job: the stream
                        // ends after this error.
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
                State::Fetching(fetch) => {
                    let listing = std::task::ready!(Pin::new(fetch).poll(cx));
                    this.state = State::Idle(Some(listing));
                }
            }
        }
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// An entry of a [`ReadDir`] listing.
#[derive(Clone)]
pub struct DirEntry(Arc<std::fs::DirEntry>);

impl DirEntry {
    /// The entry's full path (the directory's path joined with its name).
    pub fn path(&self) -> PathBuf {
        self.0.path()
    }

    /// The entry's name, without its directory.
    pub fn file_name(&self) -> OsString {
        self.0.file_name()
    }

    /// The entry's metadata, not following a symbolic link.
    ///
    /// # Errors
    ///
    /// As `std::fs::DirEntry::metadata`, naming the path.
    pub async fn metadata(&self) -> io::Result<Metadata> {
        let entry = Arc::clone(&self.0);
        tarn_blocking::try_unblock(move || {
            entry
                .metadata()
                .map_err(|e| at_path(e, "stat", &entry.path()))
        })?
        .await
    }

    /// The entry's type, not following a symbolic link (usually known from
    /// the listing itself; otherwise a `stat` on the pool).
    ///
    /// # Errors
    ///
    /// As `std::fs::DirEntry::file_type`, naming the path.
    pub async fn file_type(&self) -> io::Result<FileType> {
        let entry = Arc::clone(&self.0);
        tarn_blocking::try_unblock(move || {
            entry
                .file_type()
                .map_err(|e| at_path(e, "stat", &entry.path()))
        })?
        .await
    }
}

impl fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DirEntry").field(&self.0.path()).finish()
    }
}
