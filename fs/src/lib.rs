//! tarn's files. A regular file is always "ready" to a selector and blocks
//! in `read(2)` all the same, so every call here runs on tarn's blocking
//! pool ([`tarn_blocking::unblock`]) and is awaited, under any executor.
//!
//! The functions mirror `std::fs` ([`read`], [`write()`], [`metadata`],
//! [`create_dir_all`], [`rename`], [`read_dir`], ...) and name the path in
//! every error (`cannot read "/etc/nope": No such file or directory`).
//! [`File`] is `futures-io`'s `AsyncRead`, `AsyncWrite` and `AsyncSeek`;
//! its small reads and writes are gathered into chunks of [`CHUNK`] bytes,
//! so a `BufReader` reading lines, or many small `write`s, cost one pool
//! round trip per chunk, not one per call. [`ReadDir`] is a `Stream` that
//! fetches its entries in batches.
//!
//! ```
//! use futures::io::{AsyncReadExt, AsyncWriteExt};
//!
//! tarn_executor::block_on(async {
//!     let dir = std::env::temp_dir().join(format!("tarn-fs-doc-{}", std::process::id()));
//!     tarn_fs::create_dir_all(&dir).await?;
//!     let path = dir.join("hello.txt");
//!
//!     let mut file = tarn_fs::File::create(&path).await?;
//!     file.write_all(b"hello, ").await?;
//!     file.write_all(b"files").await?;
//!     file.close().await?; // writes what is gathered
//!
//!     assert_eq!(tarn_fs::read_to_string(&path).await?, "hello, files");
//!     let mut text = String::new();
//!     tarn_fs::File::open(&path).await?.read_to_string(&mut text).await?;
//!     assert_eq!(text, "hello, files");
//!
//!     let missing = tarn_fs::read(dir.join("missing")).await.unwrap_err();
//!     assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
//!     assert!(missing.to_string().contains("missing"));
//!     tarn_fs::remove_dir_all(&dir).await
//! })?;
//! # std::io::Result::Ok(())
//! ```

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![forbid(unsafe_code)]

mod dir;
mod file;

use std::io;
use std::path::{Path, PathBuf};

pub use dir::{read_dir, DirEntry, ReadDir};
pub use file::{File, OpenOptions, CHUNK};
pub use std::fs::{FileType, Metadata, Permissions};

/// `e` with what was being done and to which path: `cannot read "x": ...`.
pub(crate) fn at_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("cannot {what} {path:?}: {e}"))
}

/// Runs `op` on `path` on the blocking pool; an error names `what` and the
/// path.
async fn on_pool<T: Send + 'static>(
    path: &Path,
    what: &'static str,
    op: impl FnOnce(&Path) -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let path = path.to_path_buf();
    tarn_blocking::try_unblock(move || op(&path).map_err(|e| at_path(e, what, &path)))?.await
}

/// Runs `op` on two paths on the blocking pool; an error names both.
async fn on_pool2<T: Send + 'static>(
    from: &Path,
    to: &Path,
    what: &'static str,
    op: impl FnOnce(&Path, &Path) -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    tarn_blocking::try_unblock(move || {
        op(&from, &to)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot {what} {from:?} to {to:?}: {e}")))
    })?
    .await
}

/// The whole contents of a file.
///
/// # Errors
///
/// As `std::fs::read`, naming the path.
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    on_pool(path.as_ref(), "read", |p| std::fs::read(p)).await
}

/// The whole contents of a file, as UTF-8 text.
///
/// # Errors
///
/// As `std::fs::read_to_string` (`InvalidData` for text that is not
/// UTF-8), naming the path.
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    on_pool(path.as_ref(), "read", |p| std::fs::read_to_string(p)).await
}

/// Writes `contents` as the whole of a file, creating it or truncating it.
///
/// # Errors
///
/// As `std::fs::write`, naming the path.
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let contents = contents.as_ref().to_vec();
    on_pool(path.as_ref(), "write", move |p| std::fs::write(p, contents)).await
}

/// A file's or directory's metadata, following symbolic links.
///
/// # Errors
///
/// As `std::fs::metadata`, naming the path.
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    on_pool(path.as_ref(), "stat", |p| std::fs::metadata(p)).await
}

/// Like [`metadata`], without following a final symbolic link.
///
/// # Errors
///
/// As `std::fs::symlink_metadata`, naming the path.
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    on_pool(path.as_ref(), "stat", |p| std::fs::symlink_metadata(p)).await
}

/// The absolute path with every symbolic link and `..` resolved.
///
/// # Errors
///
/// As `std::fs::canonicalize`, naming the path.
pub async fn canonicalize(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    on_pool(path.as_ref(), "resolve", |p| std::fs::canonicalize(p)).await
}

/// Creates a directory (its parent must exist).
///
/// # Errors
///
/// As `std::fs::create_dir` (`AlreadyExists` if it does), naming the path.
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    on_pool(path.as_ref(), "create directory", |p| {
        std::fs::create_dir(p)
    })
    .await
}

/// Creates a directory and every missing parent; `Ok` if it exists.
///
/// # Errors
///
/// As `std::fs::create_dir_all`, naming the path.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    on_pool(path.as_ref(), "create directory", |p| {
        std::fs::create_dir_all(p)
    })
    .await
}

/// Removes a file (or symbolic link).
///
/// # Errors
///
/// As `std::fs::remove_file`, naming the path.
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    on_pool(path.as_ref(), "remove", |p| std::fs::remove_file(p)).await
}

/// Removes an empty directory.
///
/// # Errors
///
/// As `std::fs::remove_dir`, naming the path.
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    on_pool(path.as_ref(), "remove directory", |p| {
        std::fs::remove_dir(p)
    })
    .await
}

/// Removes a directory and everything in it.
///
/// # Errors
///
/// As `std::fs::remove_dir_all`, naming the path.
pub async fn remove_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    on_pool(path.as_ref(), "remove directory", |p| {
        std::fs::remove_dir_all(p)
    })
    .await
}

/// Renames `from` to `to`, replacing `to` if it is a file.
///
/// # Errors
///
/// As `std::fs::rename`, naming both paths.
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    on_pool2(from.as_ref(), to.as_ref(), "rename", |f, t| {
        std::fs::rename(f, t)
    })
    .await
}

/// Copies a file's contents and permissions; returns the bytes copied.
///
/// # Errors
///
/// As `std::fs::copy`, naming both paths.
pub async fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    on_pool2(from.as_ref(), to.as_ref(), "copy", |f, t| {
        std::fs::copy(f, t)
    })
    .await
}

/// Makes a hard link `link` to `original`.
///
/// # Errors
///
/// As `std::fs::hard_link`, naming both paths.
pub async fn hard_link(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    on_pool2(original.as_ref(), link.as_ref(), "link", |o, l| {
        std::fs::hard_link(o, l)
    })
    .await
}

/// Sets a file's permissions.
///
/// # Errors
///
/// As `std::fs::set_permissions`, naming the path.
pub async fn set_permissions(path: impl AsRef<Path>, perm: Permissions) -> io::Result<()> {
    on_pool(path.as_ref(), "set permissions of", move |p| {
        std::fs::set_permissions(p, perm)
    })
    .await
}
