//! Files through the blocking pool, under tarn's executor (on every
//! backend) and under `futures::executor`: 64 MiB through a `File` in
//! random chunk sizes, checksummed, in a number of pool jobs set by the
//! chunk size rather than by the calls; lines through a `BufReader`;
//! positions kept right when reads, writes and seeks interleave; gathered
//! writes that reach the file on drop; directory listings; errors that
//! name their paths.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};
use futures::StreamExt;
use tarn_fs::{File, OpenOptions, CHUNK};
use tarn_test_support::{
    bounded, eventually, fnv1a, isolated, rerun_on_poll_and_select, sized, RandomChunks, Rng,
    FNV_START,
};

#[test]
fn on_poll_and_select_backends() {
    rerun_on_poll_and_select("on_poll_and_select_backends", None);
}

fn run<F: Future>(future: F) -> F::Output {
    tarn_executor::block_on(future)
}

/// A fresh directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tarn-fs-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `len` seeded bytes to `path` through a `File` in random write
/// sizes (1 B to 300 KiB), then reads them back in random read sizes;
/// returns (write jobs, read jobs) and fails unless every byte came back.
async fn round_trip(path: &Path, len: usize, seed: u64) -> (u64, u64) {
    let mut sizes = Rng::xorshift_star(seed ^ 0x5eed);
    let mut chunks = RandomChunks::new(Rng::xorshift_star(seed), len);
    let mut file = File::create(path).await.unwrap();
    let opened = tarn_blocking::jobs();
    while let Some(chunk) = chunks.next_chunk(random_size(&mut sizes)) {
        file.write_all(chunk).await.unwrap();
    }
    file.close().await.unwrap();
    let write_jobs = tarn_blocking::jobs() - opened;
    drop(file);

    let mut file = File::open(path).await.unwrap();
    let opened = tarn_blocking::jobs();
    let mut buf = vec![0; 300 << 10];
    let mut hash = FNV_START;
    let mut read = 0;
    loop {
        let want = random_size(&mut sizes);
        let n = file.read(&mut buf[..want]).await.unwrap();
        if n == 0 {
            break;
        }
        hash = fnv1a(hash, &buf[..n]);
        read += n;
    }
    let read_jobs = tarn_blocking::jobs() - opened;
    assert_eq!(read, len, "read back a different length");
    assert_eq!(hash, chunks.checksum(), "read back other bytes");
    (write_jobs, read_jobs)
}

/// Mostly small sizes, now and then one past a chunk.
fn random_size(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0 => rng.between(CHUNK, 300 << 10),
        1..=3 => rng.between(1, 64),
        _ => rng.between(1, 16 << 10),
    }
}

#[test]
fn sixty_four_mib_in_random_chunks_come_back_intact_in_chunk_sized_jobs() {
    // Alone in a process of its own, so that the pool's job count is this
    // test's.
    isolated(
        "sixty_four_mib_in_random_chunks_come_back_intact_in_chunk_sized_jobs",
        || {
            let dir = Scratch::new("64mib");
            let len = sized(64 << 20, 512 << 20);
            let (writes, reads) = run(round_trip(&dir.join("data"), len, 64));
            // Every job but the last of each direction moves a chunk or more.
            let most = (len / CHUNK) as u64 + 1;
            assert!(
                writes <= most,
                "{writes} write jobs for {len} bytes (at most {most})"
            );
            assert!(
                reads <= most + 1,
                "{reads} read jobs for {len} bytes (at most {})",
                most + 1
            );
            tarn_test_support::figure(format_args!(
            "fs: {} MiB in random sizes: {writes} write jobs, {reads} read jobs ({} KiB chunks)",
            len >> 20,
            CHUNK >> 10
        ));
        },
    );
}

#[test]
fn a_bufreader_reads_lines_in_chunks_not_one_pool_trip_per_line() {
    isolated(
        "a_bufreader_reads_lines_in_chunks_not_one_pool_trip_per_line",
        || {
            let dir = Scratch::new("lines");
            let path = dir.join("lines");
            let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
            std::fs::write(&path, &text).unwrap();
            run(async {
                let file = File::open(&path).await.unwrap();
                let before = tarn_blocking::jobs();
                let mut lines = BufReader::new(file).lines();
                let mut n = 0;
                while let Some(line) = lines.next().await {
                    assert_eq!(line.unwrap(), format!("line {n}"));
                    n += 1;
                }
                let jobs = tarn_blocking::jobs() - before;
                assert_eq!(n, 100_000);
                let most = (text.len() / CHUNK) as u64 + 2;
                assert!(
                    jobs <= most,
                    "{jobs} pool jobs for {} bytes of lines",
                    text.len()
                );
            });
        },
    );
}

#[test]
fn reads_writes_and_seeks_interleaved_keep_the_position() {
    bounded("interleaved_keep_the_position", || {
        let dir = Scratch::new("position");
        let path = dir.join("pos");
        let original: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &original).unwrap();
        run(async {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .await
                .unwrap();
            assert_eq!(file.seek(SeekFrom::Start(100)).await.unwrap(), 100);
            let mut ten = [0; 10];
            file.read_exact(&mut ten).await.unwrap();
            assert_eq!(&ten[..], &original[100..110]);
            // The read fetched a chunk ahead; the write lands at 110 all the same.
            file.write_all(b"XYZ").await.unwrap();
            // Current counts from this File's position (113), not the read-ahead.
            assert_eq!(file.seek(SeekFrom::Current(7)).await.unwrap(), 120);
            file.read_exact(&mut ten).await.unwrap();
            assert_eq!(&ten[..], &original[120..130]);
            assert_eq!(
                file.seek(SeekFrom::End(-1)).await.unwrap(),
                original.len() as u64 - 1
            );
            file.write_all(b"!").await.unwrap();
            file.set_len(original.len() as u64 + 5).await.unwrap();
            file.close().await.unwrap();
        });
        let mut expected = original.clone();
        expected[110..113].copy_from_slice(b"XYZ");
        *expected.last_mut().unwrap() = b'!';
        expected.extend_from_slice(&[0; 5]);
        assert!(
            std::fs::read(&path).unwrap() == expected,
            "the file's bytes are not where they were written"
        );

        // into_std hands over the file at this File's position.
        let pos = run(async {
            let mut file = File::open(&path).await.unwrap();
            let mut byte = [0; 1];
            file.read_exact(&mut byte).await.unwrap();
            let mut std = file.into_std().await.unwrap();
            std::io::Seek::stream_position(&mut std).unwrap()
        });
        assert_eq!(pos, 1);
    });
}

#[test]
fn writes_gathered_when_the_file_is_dropped_reach_it() {
    bounded("gathered_writes_on_drop", || {
        let dir = Scratch::new("drop");
        let path = dir.join("dropped");
        run(async {
            let mut file = File::create(&path).await.unwrap();
            file.write_all(b"not flushed").await.unwrap();
        });
        let arrived = eventually(Duration::from_secs(10), || {
            std::fs::read(&path).is_ok_and(|b| b == b"not flushed")
        });
        assert!(arrived, "gathered bytes lost: {:?}", std::fs::read(&path));
    });
}

#[test]
fn read_dir_lists_every_entry_across_its_batches() {
    bounded("read_dir_lists_every_entry", || {
        let dir = Scratch::new("listing");
        let names: BTreeSet<String> = (0..300).map(|i| format!("f{i:03}")).collect();
        for name in &names {
            std::fs::write(dir.join(name), name).unwrap();
        }
        std::fs::create_dir(dir.join("sub")).unwrap();
        run(async {
            let mut listed = BTreeSet::new();
            let mut entries = tarn_fs::read_dir(&dir.0).await.unwrap();
            while let Some(entry) = entries.next().await {
                let entry = entry.unwrap();
                let name = entry.file_name().into_string().unwrap();
                let kind = entry.file_type().await.unwrap();
                if name == "sub" {
                    assert!(kind.is_dir());
                    continue;
                }
                assert!(kind.is_file());
                assert_eq!(entry.metadata().await.unwrap().len(), name.len() as u64);
                assert_eq!(entry.path(), dir.join(&name));
                listed.insert(name);
            }
            assert_eq!(listed, names);
        });
    });
}

#[test]
fn the_std_like_functions_do_what_std_does() {
    bounded("std_like_functions", || {
        let dir = Scratch::new("functions");
        run(async {
            let deep = dir.join("a/b/c");
            tarn_fs::create_dir_all(&deep).await.unwrap();
            assert!(tarn_fs::metadata(&deep).await.unwrap().is_dir());
            let file = deep.join("x");
            tarn_fs::write(&file, "contents").await.unwrap();
            assert_eq!(tarn_fs::read(&file).await.unwrap(), b"contents");
            let copy = dir.join("copy");
            assert_eq!(tarn_fs::copy(&file, &copy).await.unwrap(), 8);
            let moved = dir.join("moved");
            tarn_fs::rename(&copy, &moved).await.unwrap();
            assert_eq!(tarn_fs::read_to_string(&moved).await.unwrap(), "contents");
            assert!(tarn_fs::metadata(&copy).await.is_err());
            assert_eq!(
                tarn_fs::canonicalize(&moved).await.unwrap(),
                std::fs::canonicalize(&moved).unwrap()
            );
            tarn_fs::remove_file(&moved).await.unwrap();
            tarn_fs::remove_dir_all(dir.join("a")).await.unwrap();
            assert!(std::fs::read_dir(&dir.0).unwrap().next().is_none());
        });
    });
}

#[test]
fn errors_say_what_was_done_to_which_path() {
    bounded("errors_name_the_path", || {
        let dir = Scratch::new("errors");
        run(async {
            let missing = dir.join("missing");
            for err in [
                tarn_fs::read(&missing).await.unwrap_err(),
                tarn_fs::remove_file(&missing).await.unwrap_err(),
                File::open(&missing).await.unwrap_err(),
                tarn_fs::read_dir(&missing).await.unwrap_err(),
            ] {
                assert_eq!(err.kind(), ErrorKind::NotFound);
                assert!(
                    err.to_string().contains(&*missing.to_string_lossy()),
                    "{err}"
                );
            }
            let to = dir.join("to");
            let err = tarn_fs::rename(&missing, &to).await.unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&*missing.to_string_lossy()) && text.contains(&*to.to_string_lossy()),
                "{err}"
            );
            let err = tarn_fs::create_dir(&dir.0).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::AlreadyExists);
            let binary = dir.join("binary");
            std::fs::write(&binary, [0xff, 0xfe]).unwrap();
            let err = tarn_fs::read_to_string(&binary).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidData);
            assert!(err.to_string().contains("binary"), "{err}");
            // A read of a directory fails in the read, naming it.
            let mut file = File::open(&dir.0).await.unwrap();
            let err = file.read(&mut [0; 10]).await.unwrap_err();
            assert!(err.to_string().contains("cannot read"), "{err}");
        });
    });
}

#[test]
fn files_work_under_a_foreign_executor() {
    bounded("files_under_a_foreign_executor", || {
        let dir = Scratch::new("foreign");
        let (writes, reads) =
            futures::executor::block_on(round_trip(&dir.join("data"), 4 << 20, 9));
        assert!(writes > 0 && reads > 0);
    });
}
