//! Small objects in a local folder, read and written on the calling thread.
//!
//! `object_store`'s `LocalFileSystem` runs every call on tokio's blocking pool: a hand-off to a
//! pool thread and a wake-up back, per call. For an object of a few hundred bytes (a tiny task's
//! input, its output, its manifest) those two wake-ups cost several times the system calls
//! themselves: on a local folder in `tmpfs` the bench's tiny tasks took ~230 µs each against
//! ~45 µs on `memory://`, and a profile put most of the difference in the scheduler's context
//! switches (bench/results/scheduler.txt). `io::storage::Storage` therefore opens
//! local files here, on the calling thread, reads here the ranges of at most
//! [`INLINE_AT_MOST`] bytes, and writes here the objects of at most that size; larger reads
//! and writes still go to the blocking pool.
//!
//! What is written here is what `LocalFileSystem` writes, and what is read is what it reads: a
//! staged file (`<name>#<n>`, which its listings skip) renamed into place, or hard-linked for a
//! create-if-absent; the same ETag (inode, modification time and size). An object written
//! either way reads back either way, and its identity checks agree (a test below holds the
//! two to it).

use crate::error::{Error, Result};
use bytes::Bytes;
use object_store::PutPayload;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{ErrorKind, Write};
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The most bytes read or written on the calling thread: copying 64 KiB out of the page cache
/// takes a few microseconds, less than the hand-off it saves.
pub const INLINE_AT_MOST: u64 = 64 << 10;

/// What a write did.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// The object is in place, with this ETag.
    Put { e_tag: String },
    /// Create-if-absent found an object there already; nothing was written.
    AlreadyExists,
}

/// Opens an object's file: one that is missing, or a folder, is [`Error::NotFound`].
pub fn open(path: &Path, url: &str) -> Result<(File, Metadata)> {
    let opened = File::open(path).and_then(|file| file.metadata().map(|meta| (file, meta)));
    match opened {
        Ok((_, meta)) if meta.is_dir() => Err(Error::NotFound { url: url.to_string() }),
        Ok(opened) => Ok(opened),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::NotFound { url: url.to_string() }),
        Err(e) => Err(failure(url, e)),
    }
}

/// Bytes `range` of an open file, which must lie within it.
pub fn read_range(file: &File, range: Range<u64>, url: &str) -> Result<Bytes> {
    let mut buf = vec![0; range_len(&range, url)?];
    file.read_exact_at(&mut buf, range.start).map_err(|e| match e.kind() {
        ErrorKind::UnexpectedEof => failure(
            url,
            std::io::Error::new(
                ErrorKind::UnexpectedEof,
                format!("bytes {}..{} lie beyond the end of the file", range.start, range.end),
            ),
        ),
        _ => failure(url, e),
    })?;
    Ok(Bytes::from(buf))
}

/// Bytes `range` of `file`, read into a buffer of their size that is not zeroed first (the
/// `read_to_end` of a `File` reads into spare capacity): for ranges too large to read on the
/// calling thread, whose buffers a zeroing pass would cost a second pass over every byte. A
/// file that ends before `range` does is an error, not a short buffer.
pub fn read_range_unzeroed(file: &mut File, range: Range<u64>) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let len = usize::try_from(range.end.saturating_sub(range.start)).map_err(std::io::Error::other)?;
    file.seek(SeekFrom::Start(range.start))?;
    let mut buf = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() != len {
        let message = format!(
            "bytes {}..{} lie beyond the end of the file (read {} of {len} bytes)",
            range.start,
            range.end,
            buf.len()
        );
        return Err(std::io::Error::new(ErrorKind::UnexpectedEof, message));
    }
    Ok(buf)
}

/// Writes `payload` at `path`, replacing what was there; returns its ETag.
pub fn put(path: &Path, payload: &PutPayload, url: &str) -> Result<String> {
    match write(path, payload, false, url)? {
        Written::Put { e_tag } => Ok(e_tag),
        // A rename replaces what is there; it never finds it in the way.
        Written::AlreadyExists => Err(failure(url, ErrorKind::AlreadyExists.into())),
    }
}

/// Writes `payload` at `path` unless an object is there already (then leaves that as it was).
pub fn create(path: &Path, payload: &PutPayload, url: &str) -> Result<Written> {
    write(path, payload, true, url)
}

/// Writes `payload` at `path`, whole or not at all: into a staged file first, then renamed
/// there (`create: false`) or hard-linked there (`create: true`, which finds an object there
/// already rather than replacing it). Missing folders are created.
fn write(path: &Path, payload: &PutPayload, create: bool, url: &str) -> Result<Written> {
    let (file, staged) = new_staged(path).map_err(|e| failure(url, e))?;
    let placed = fill_and_place(file, &staged, path, payload, create);
    // A rename took the staged name away; after a link (the object's second name) or a
    // failure it is removed, so nothing half-written stays behind.
    if create || placed.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    placed.map_err(|e| failure(url, e))
}

fn fill_and_place(
    mut file: File,
    staged: &Path,
    path: &Path,
    payload: &PutPayload,
    create: bool,
) -> std::io::Result<Written> {
    for chunk in payload.iter() {
        file.write_all(chunk)?;
    }
    let e_tag = e_tag(&file.metadata()?);
    drop(file);
    if !create {
        std::fs::rename(staged, path)?;
        return Ok(Written::Put { e_tag });
    }
    match std::fs::hard_link(staged, path) {
        Ok(()) => Ok(Written::Put { e_tag }),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Written::AlreadyExists),
        Err(e) => Err(e),
    }
}

/// Deletes an object; one already gone counts as deleted.
pub fn delete(path: &Path, url: &str) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(failure(url, e)),
        _ => Ok(()),
    }
}

/// The ETag `object_store`'s `LocalFileSystem` gives a file: inode, modification time in
/// microseconds and size, in hexadecimal.
pub fn e_tag(meta: &Metadata) -> String {
    let micros = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default();
    format!("{:x}-{:x}-{:x}", meta.ino(), micros.as_micros(), meta.len())
}

/// The bytes of `range`, as a length that fits in memory.
pub(super) fn range_len(range: &Range<u64>, url: &str) -> Result<usize> {
    let len = range.end.saturating_sub(range.start);
    usize::try_from(len).map_err(|_| Error::InvalidUrl {
        url: url.to_string(),
        reason: format!("a range of {len} bytes does not fit in memory"),
    })
}

/// A local file's I/O error, as `object_store` reports one.
pub(super) fn failure(url: &str, e: std::io::Error) -> Error {
    Error::from_store(url, object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) })
}

/// A new file beside `path`, named `<path>#<n>` for the first `n` not taken.
fn new_staged(path: &Path) -> std::io::Result<(File, PathBuf)> {
    let mut n = 1u32;
    loop {
        let mut staged = path.as_os_str().to_owned();
        staged.push(format!("#{n}"));
        let staged = PathBuf::from(staged);
        match OpenOptions::new().write(true).create_new(true).open(&staged) {
            Ok(file) => return Ok((file, staged)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => n += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => match path.parent() {
                Some(parent) => std::fs::create_dir_all(parent)?,
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;
    use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};

    fn store_path(path: &Path) -> object_store::path::Path {
        object_store::path::Path::from_absolute_path(path).unwrap()
    }

    #[tokio::test]
    async fn objects_written_here_read_back_through_object_store_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFileSystem::new();
        let path = dir.path().join("nested/folder/object.arrow");
        let payload = PutPayload::from_iter([Bytes::from_static(b"hello "), Bytes::from_static(b"world")]);

        // Written here (folders created): object_store reads the same bytes and ETag.
        let ours = put(&path, &payload, "x").unwrap();
        let got = store.get(&store_path(&path)).await.unwrap();
        assert_eq!(got.meta.e_tag.as_deref(), Some(ours.as_str()));
        assert_eq!(got.bytes().await.unwrap(), Bytes::from_static(b"hello world"));

        // Written by object_store: read here, same ETag.
        let theirs = store.put(&store_path(&path), PutPayload::from_static(b"replaced")).await.unwrap();
        let (file, meta) = open(&path, "x").unwrap();
        assert_eq!(theirs.e_tag, Some(e_tag(&meta)));
        assert_eq!(read_range(&file, 2..6, "x").unwrap(), Bytes::from_static(b"plac"));
        // Past the end: an error, not fewer bytes.
        assert!(read_range(&file, 4..9, "x").is_err());

        // No staged file is left behind, so object_store lists exactly the object.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["object.arrow".to_string()]);
    }

    #[tokio::test]
    async fn create_if_absent_keeps_the_first_object() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("commits/task.json");
        let first = create(&path, &PutPayload::from_static(b"first"), "x").unwrap();
        assert!(matches!(first, Written::Put { .. }));
        let second = create(&path, &PutPayload::from_static(b"second"), "x").unwrap();
        assert_eq!(second, Written::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        // object_store's create-if-absent sees the same object.
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        let theirs = LocalFileSystem::new()
            .put_opts(&store_path(&path), PutPayload::from_static(b"third"), opts)
            .await;
        assert!(matches!(theirs, Err(object_store::Error::AlreadyExists { .. })));
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no staged file is left");
    }

    #[test]
    fn missing_objects_and_folders_are_not_found_and_deletes_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(open(&dir.path().join("absent"), "u"), Err(Error::NotFound { url }) if url == "u"));
        assert!(matches!(open(dir.path(), "u"), Err(Error::NotFound { .. })));
        let path = dir.path().join("a");
        put(&path, &PutPayload::from_static(b"a"), "u").unwrap();
        delete(&path, "u").unwrap();
        delete(&path, "u").unwrap();
        assert!(!path.exists());
    }
}
