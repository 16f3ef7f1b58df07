//! Object storage by URL: local paths and `file://` (the embedded default), `s3://bucket/prefix`
//! (S3, LocalStack, MinIO) and `memory://` (tests), all through `object_store`.
//!
//! A [`Storage`] caches one client per bucket. `memory://` stores are process-global, keyed by
//! authority, so the coordinator and in-process workers see the same objects.

use super::credentials::{self, AwsConfigCredentials, BucketCredentials, ProfileSettings};
use super::local::{self, INLINE_AT_MOST};
use crate::error::{Error, Result};
use bytes::Bytes;
use futures::TryStreamExt;
use globset::GlobBuilder;
use object_store::aws::AmazonS3Builder;
use object_store::client::{HttpError, HttpErrorKind};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use shoal_protocol::{ObjectRef, StorageOptions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use url::Url;

/// A store and the path of one location inside it.
#[derive(Debug, Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub path: Path,
    /// Canonical URL of the location (`file:///abs`, `s3://b/k`, `memory://a/k`).
    pub url: String,
    /// `scheme://authority/` prefix used to turn store paths back into URLs.
    base: String,
    /// The store again, when it is a local folder: [`Storage`] does small reads and writes of
    /// local files itself, on the calling thread (see [`local`]).
    local: Option<Arc<LocalFileSystem>>,
}

impl Location {
    /// URL of another path in the same store.
    pub fn url_of(&self, path: &Path) -> String {
        format!("{}{}", self.base, path)
    }

    /// A location below this one (`child` is `/`-separated).
    pub fn join(&self, child: &str) -> Location {
        let mut path = self.path.clone();
        for part in child.split('/').filter(|p| !p.is_empty()) {
            path = path.clone().join(part);
        }
        Location {
            store: self.store.clone(),
            url: self.url_of(&path),
            path,
            base: self.base.clone(),
            local: self.local.clone(),
        }
    }

    /// The file of a location in a local folder.
    pub fn file(&self) -> Option<std::path::PathBuf> {
        self.local.as_ref()?.path_to_filesystem(&self.path).ok()
    }

    /// Every object below this location, in the store's order; none when nothing is there. A
    /// listing whose response breaks off is listed again from the start.
    pub async fn list_all(&self) -> Result<Vec<ObjectMeta>> {
        repeat_broken(&self.url, || async {
            match self.store.list(Some(&self.path)).try_collect::<Vec<_>>().await {
                Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
                listed => listed,
            }
        })
        .await
    }
}

/// Outcome of a create-if-absent put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// This call created the object.
    Created,
    /// The object already existed; it was left as it was.
    AlreadyExists,
}

/// Resolves URLs to object stores.
#[derive(Debug, Default)]
pub struct Storage {
    options: StorageOptions,
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
    /// The store of local folders (`file://`).
    local: Arc<LocalFileSystem>,
    /// aws-config credentials, shared by this storage's buckets (built with the first one).
    aws_credentials: OnceLock<Arc<AwsConfigCredentials>>,
}

fn memory_stores() -> &'static Mutex<HashMap<String, Arc<dyn ObjectStore>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

/// How many times in all an idempotent request (a GET, a listing, a delete) whose response was
/// cut off is sent. `object_store` retries a request that fails, but not a body that breaks
/// off after the headers arrived (a dropped connection, a proxy timing out); such a request is
/// safe to repeat from the start.
const BODY_ATTEMPTS: usize = 3;

/// Whether a request failed because its connection or response broke off (the body cut short,
/// a reset, a timeout) rather than because the store refused it.
fn broke_off(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(http) = err.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Interrupted
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Connect
                    | HttpErrorKind::Request
            );
        }
        source = err.source();
    }
    false
}

/// Runs an idempotent request (a listing, a delete), sending it again (up to
/// [`BODY_ATTEMPTS`] times in all) when it [broke off](broke_off). `object_store` retries a
/// request that fails with a 5xx, but not one whose response body broke off after the status
/// arrived: the delete of `_SUCCESS` is a `DeleteObjects` POST whose XML answer can be cut.
async fn repeat_broken<T, F, Fut>(url: &str, mut request: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = object_store::Result<T>>,
{
    let mut attempt = 1;
    loop {
        match request().await {
            Ok(value) => return Ok(value),
            Err(e) if attempt < BODY_ATTEMPTS && broke_off(&e) => {
                tracing::debug!(url, attempt, error = %e, "the response broke off; sending the request again");
                attempt += 1;
            }
            Err(e) => return Err(Error::from_store(url, e)),
        }
    }
}

/// One GET read to the end, sent again (up to [`BODY_ATTEMPTS`] times) when its body breaks
/// off; `range` of it, or all of it. With `expected`, the object must still be the one the job
/// was planned against. `map`: a local file's range of [`MAP_AT_LEAST`] bytes or more is mapped,
/// not read (only for intermediates, see [`map_file_range`]).
async fn read_whole(
    loc: &Location,
    url: &str,
    range: Option<std::ops::Range<u64>>,
    expected: Option<&ObjectRef>,
    map: bool,
) -> Result<Bytes> {
    if let Some(file) = loc.file() {
        return read_local(&file, url, range, expected, map).await;
    }
    let mut attempt = 1;
    loop {
        let options = GetOptions { range: range.clone().map(Into::into), ..Default::default() };
        let result = loc.store.get_opts(&loc.path, options).await.map_err(|e| Error::from_store(url, e))?;
        if let Some(object) = expected {
            check_identity(object, result.meta.size, result.meta.e_tag.as_deref())?;
        }
        match result.bytes().await {
            Ok(bytes) => return Ok(bytes),
            Err(e) if attempt >= BODY_ATTEMPTS => return Err(Error::from_store(url, e)),
            Err(e) => {
                tracing::debug!(url, attempt, error = %e, "the response body broke off; reading again");
                attempt += 1;
            }
        }
    }
}

/// [`read_whole`] of a local file: opened, checked and (up to [`INLINE_AT_MOST`] bytes) read on
/// the calling thread; a larger range is read or mapped on the blocking pool.
async fn read_local(
    file: &std::path::Path,
    url: &str,
    range: Option<std::ops::Range<u64>>,
    expected: Option<&ObjectRef>,
    map: bool,
) -> Result<Bytes> {
    let (file, meta) = local::open(file, url)?;
    if let Some(object) = expected {
        check_identity(object, meta.len(), Some(&local::e_tag(&meta)))?;
    }
    let range = range.unwrap_or(0..meta.len());
    if range.start > range.end || range.end > meta.len() {
        let reason = format!("bytes {}..{} of a file of {} bytes", range.start, range.end, meta.len());
        return Err(local::failure(url, std::io::Error::new(std::io::ErrorKind::InvalidInput, reason)));
    }
    match range.end - range.start {
        len if len <= INLINE_AT_MOST => local::read_range(&file, range, url),
        len if map && len >= MAP_AT_LEAST => map_file_range(file, range, url).await,
        _ => read_file_range(file, range, url).await,
    }
}

/// `range` of an open local file, read into memory that is not zeroed first (`object_store`
/// zeroes its buffer before reading into it: a second pass over every byte, and the page
/// faults of a fresh buffer, on a path that reads every shuffle bucket and intermediate).
async fn read_file_range(file: std::fs::File, range: std::ops::Range<u64>, url: &str) -> Result<Bytes> {
    let failed = |e| local::failure(url, e);
    let read = tokio::task::spawn_blocking(move || {
        let mut file = file;
        local::read_range_unzeroed(&mut file, range)
    })
    .await
    .map_err(|e| failed(std::io::Error::other(e)))?
    .map_err(failed)?;
    Ok(Bytes::from(read))
}

/// The smallest read [`Storage::get_intermediate`] maps: below it, the system calls of a mapping
/// cost more than copying (a tiny task's input is a few hundred bytes), and a small buffer comes
/// from the allocator's heap, whose pages are reused rather than zeroed.
pub const MAP_AT_LEAST: u64 = 1 << 20;

/// `range` of an open local file, mapped into memory (read-only, its pages faulted in up front).
/// Only for intermediates: a file that shrank while mapped would fault its reader, and shoal
/// never writes an intermediate in place — it writes a new file and renames or links it there,
/// which leaves a mapping of the old file intact (as does deleting it).
async fn map_file_range(file: std::fs::File, range: std::ops::Range<u64>, url: &str) -> Result<Bytes> {
    let failed = |e| local::failure(url, e);
    let len = local::range_len(&range, url)?;
    let map = tokio::task::spawn_blocking(move || -> std::io::Result<memmap2::Mmap> {
        let size = file.metadata()?.len();
        if size < range.end {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the file has {size} bytes, fewer than the {} it had when opened", range.end),
            ));
        }
        // SAFETY: the mapping is read-only and its range lies within the file, whose contents
        // shoal never changes in place (see above); the bytes are only read through `Bytes`.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::MmapOptions::new().offset(range.start).len(len).populate().map(&file) };
        map
    })
    .await
    .map_err(|e| failed(std::io::Error::other(e)))?
    .map_err(failed)?;
    Ok(Bytes::from_owner(map))
}

/// Turns a user-supplied location (plain path, relative or absolute, or URL) into a URL.
pub fn to_url(location: &str) -> Result<Url> {
    let invalid = |reason: String| Error::InvalidUrl { url: location.to_string(), reason };
    if location.is_empty() {
        return Err(invalid("empty location".into()));
    }
    if let Some((scheme, _)) = location.split_once("://") {
        if !["file", "s3", "memory"].contains(&scheme) {
            return Err(invalid(format!(
                "unsupported scheme '{scheme}' (use a local path, file://, s3:// or memory://)"
            )));
        }
        return Url::parse(location).map_err(|e| invalid(e.to_string()));
    }
    let path = std::path::Path::new(location);
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(|e| invalid(e.to_string()))?.join(path)
    };
    // Normalise `.` and `..` lexically: the path need not exist yet.
    let mut clean = std::path::PathBuf::new();
    for c in absolute.components() {
        match c {
            std::path::Component::ParentDir => {
                clean.pop();
            }
            std::path::Component::CurDir => {}
            other => clean.push(other),
        }
    }
    Url::from_file_path(&clean).map_err(|()| invalid("not an absolute path".into()))
}

impl Storage {
    pub fn new(options: StorageOptions) -> Self {
        Self {
            options,
            stores: Mutex::new(HashMap::new()),
            local: Arc::new(LocalFileSystem::new()),
            aws_credentials: OnceLock::new(),
        }
    }

    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// Resolves a location (path or URL) to its store and path.
    pub fn resolve(&self, location: &str) -> Result<Location> {
        let url = to_url(location)?;
        let invalid = |reason: String| Error::InvalidUrl { url: location.to_string(), reason };
        let invalid_path = |source| Error::InvalidPath { url: location.to_string(), source };
        match url.scheme() {
            "file" => {
                let fs_path = url.to_file_path().map_err(|()| invalid("bad file URL".into()))?;
                let path = Path::from_absolute_path(&fs_path).map_err(invalid_path)?;
                let base = "file:///".to_string();
                Ok(Location {
                    url: format!("{base}{path}"),
                    store: self.local.clone(),
                    path,
                    base,
                    local: Some(self.local.clone()),
                })
            }
            "s3" => {
                let bucket = url.host_str().unwrap_or_default().to_string();
                if bucket.is_empty() {
                    return Err(invalid("missing bucket name (s3://bucket/prefix)".into()));
                }
                let path = Path::from_url_path(url.path()).map_err(invalid_path)?;
                let store = self.cached(&format!("s3://{bucket}"), || self.build_s3(&bucket))?;
                let base = format!("s3://{bucket}/");
                Ok(Location { url: format!("{base}{path}"), store, path, base, local: None })
            }
            "memory" => {
                let authority = url.host_str().unwrap_or_default().to_string();
                let path = Path::from_url_path(url.path()).map_err(invalid_path)?;
                let store = {
                    let mut stores = memory_stores().lock().map_err(|_| invalid("lock".into()))?;
                    stores.entry(authority.clone()).or_insert_with(|| Arc::new(InMemory::new())).clone()
                };
                let base = format!("memory://{authority}/");
                Ok(Location { url: format!("{base}{path}"), store, path, base, local: None })
            }
            other => Err(invalid(format!("unsupported scheme '{other}'"))),
        }
    }

    fn cached(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<Arc<dyn ObjectStore>>,
    ) -> Result<Arc<dyn ObjectStore>> {
        let mut stores = self
            .stores
            .lock()
            .map_err(|_| Error::InvalidUrl { url: key.to_string(), reason: "store cache poisoned".into() })?;
        if let Some(store) = stores.get(key) {
            return Ok(store.clone());
        }
        let store = make()?;
        stores.insert(key.to_string(), store.clone());
        Ok(store)
    }

    fn build_s3(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        // Static keys in the environment (Lambda, the tests) keep object_store's own path; else
        // (or with a named profile) credentials come from aws-config's chain, as the AWS CLI's.
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let profile = self.options.profile.as_deref();
        let mut from_profile: Option<ProfileSettings> = None;
        let mut settings =
            || from_profile.get_or_insert_with(|| credentials::profile_settings(profile)).clone();
        let endpoint = self.options.endpoint.clone();
        if let Some(endpoint) = &endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let effective_endpoint = endpoint
            .or_else(|| {
                std::env::var("AWS_ENDPOINT_URL_S3")
                    .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .ok()
            })
            .or_else(|| settings().endpoint);
        if let Some(endpoint) = effective_endpoint {
            // Path-style addressing and plain HTTP for local S3-compatible servers.
            builder = builder
                .with_endpoint(&endpoint)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let env_region = std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION")).ok();
        let region = match (&self.options.region, env_region) {
            (Some(region), _) => region.clone(),
            (None, Some(region)) => region,
            (None, None) => settings().region.unwrap_or_else(|| "us-east-1".to_string()),
        };
        builder = builder.with_region(&region);
        if profile.is_some() || !credentials::static_keys_in_env() {
            let source = self.aws_credentials.get_or_init(|| {
                Arc::new(AwsConfigCredentials::new(self.options.profile.clone(), region.clone()))
            });
            builder = builder.with_credentials(Arc::new(BucketCredentials {
                bucket: bucket.to_string(),
                source: source.clone(),
            }));
        }
        let store = builder
            .build()
            .map_err(|e| Error::InvalidUrl { url: format!("s3://{bucket}"), reason: e.to_string() })?;
        Ok(Arc::new(store))
    }

    /// Expands a location into the objects it names, sorted by URL. A glob pattern
    /// (`data/*.parquet`, `s3://b/logs/**/*.json`) matches objects below its literal prefix; a
    /// plain location names one object, or every object below it when it is a directory.
    pub async fn list(&self, pattern: &str) -> Result<Vec<ObjectRef>> {
        let glob_at = pattern.find(['*', '?', '[', '{']);
        let (literal, glob) = match glob_at {
            Some(i) => {
                let slash = pattern[..i].rfind('/').map(|s| s + 1).unwrap_or(0);
                (&pattern[..slash], Some(&pattern[slash..]))
            }
            None => (pattern, None),
        };
        let base = self.resolve(if literal.is_empty() { "." } else { literal })?;
        let mut found = Vec::new();
        match glob {
            Some(glob) => {
                let matcher = GlobBuilder::new(glob)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| Error::InvalidUrl { url: pattern.to_string(), reason: e.to_string() })?
                    .compile_matcher();
                for meta in base.list_all().await? {
                    let rel = relative(&base.path, &meta.location);
                    if matcher.is_match(rel) && !is_hidden(rel) {
                        found.push(base_ref(&base, &meta));
                    }
                }
            }
            None => match base.store.head(&base.path).await {
                Ok(meta) => found.push(base_ref(&base, &meta)),
                // Not an object: list below it. A local directory answers HEAD with an error
                // other than NotFound.
                Err(e)
                    if matches!(e, object_store::Error::NotFound { .. })
                        || base.url.starts_with("file://") =>
                {
                    for meta in base.list_all().await? {
                        if !is_hidden(relative(&base.path, &meta.location)) {
                            found.push(base_ref(&base, &meta));
                        }
                    }
                }
                Err(e) => return Err(Error::from_store(pattern, e)),
            },
        }
        found.sort_by(|a, b| a.url.cmp(&b.url));
        if found.is_empty() {
            return Err(Error::NotFound { url: pattern.to_string() });
        }
        Ok(found)
    }

    /// Current identity of one object.
    pub async fn head(&self, location: &str) -> Result<ObjectRef> {
        let loc = self.resolve(location)?;
        let meta = loc.store.head(&loc.path).await.map_err(|e| Error::from_store(location, e))?;
        Ok(base_ref(&loc, &meta))
    }

    /// Reads a whole object, checking it is still the object the job was planned against.
    pub async fn get(&self, object: &ObjectRef) -> Result<Bytes> {
        let loc = self.resolve(&object.url)?;
        read_whole(&loc, &object.url, None, Some(object), false).await
    }

    /// Reads `range` of an object (one HTTP range GET on S3), checking the object's identity.
    pub async fn get_range(&self, object: &ObjectRef, range: std::ops::Range<u64>) -> Result<Bytes> {
        let loc = self.resolve(&object.url)?;
        read_whole(&loc, &object.url, Some(range), Some(object), false).await
    }

    /// Reads a whole object by URL, without an identity check.
    pub async fn get_url(&self, location: &str) -> Result<Bytes> {
        let loc = self.resolve(location)?;
        read_whole(&loc, location, None, None, false).await
    }

    /// Reads an intermediate — an object shoal wrote, which is never changed in place — or
    /// `range` of it, checking its identity. A local file's range of [`MAP_AT_LEAST`] bytes or
    /// more is mapped into memory instead of read into a buffer: its pages are the page cache's,
    /// so nothing is copied or zeroed (a sort's shuffle buckets and sorted runs are as large as
    /// its input). Elsewhere as [`get`](Self::get) and [`get_range`](Self::get_range).
    pub async fn get_intermediate(
        &self,
        object: &ObjectRef,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Bytes> {
        let loc = self.resolve(&object.url)?;
        read_whole(&loc, &object.url, range, Some(object), true).await
    }

    /// Writes a whole object (atomic: a reader sees all of it or none of it) from one buffer
    /// or from several chunks, written in order.
    pub async fn put(&self, location: &str, payload: impl Into<PutPayload>) -> Result<ObjectRef> {
        let loc = self.resolve(location)?;
        let payload = payload.into();
        let size = payload.content_length() as u64;
        if let Some(file) = loc.file().filter(|_| size <= INLINE_AT_MOST) {
            let e_tag = local::put(&file, &payload, location)?;
            return Ok(ObjectRef { url: loc.url, size, e_tag: Some(e_tag) });
        }
        let put = loc.store.put(&loc.path, payload).await.map_err(|e| Error::from_store(location, e))?;
        Ok(ObjectRef { url: loc.url, size, e_tag: put.e_tag })
    }

    /// Creates an object only if it does not exist yet (S3 `If-None-Match: *`, a hard link on
    /// a local folder). Exactly one of several racing callers gets [`Created::Created`].
    pub async fn create_if_absent(&self, location: &str, bytes: Bytes) -> Result<Created> {
        let loc = self.resolve(location)?;
        if let Some(file) = loc.file().filter(|_| bytes.len() as u64 <= INLINE_AT_MOST) {
            return Ok(match local::create(&file, &PutPayload::from_bytes(bytes), location)? {
                local::Written::Put { .. } => Created::Created,
                local::Written::AlreadyExists => Created::AlreadyExists,
            });
        }
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match loc.store.put_opts(&loc.path, PutPayload::from_bytes(bytes), opts).await {
            Ok(_) => Ok(Created::Created),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::AlreadyExists),
            // Some S3 implementations answer a lost race with 409 ConditionalRequestConflict
            // or 412; both mean another writer got there first.
            Err(object_store::Error::Precondition { .. }) => Ok(Created::AlreadyExists),
            Err(e) => Err(Error::from_store(location, e)),
        }
    }

    /// Deletes one object; one that is already gone counts as deleted.
    pub async fn delete(&self, location: &str) -> Result<()> {
        let loc = self.resolve(location)?;
        if let Some(file) = loc.file() {
            return local::delete(&file, location);
        }
        repeat_broken(location, || async {
            match loc.store.delete(&loc.path).await {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                deleted => deleted,
            }
        })
        .await
    }
}

fn relative<'a>(prefix: &Path, location: &'a Path) -> &'a str {
    let prefix = prefix.as_ref();
    let loc = location.as_ref();
    let rest = loc.strip_prefix(prefix).unwrap_or(loc);
    rest.trim_start_matches('/')
}

/// Hidden files (`_SUCCESS`, `.part` temporaries) are never data.
fn is_hidden(relative: &str) -> bool {
    relative.split('/').any(|seg| seg.starts_with('_') || seg.starts_with('.'))
}

fn base_ref(loc: &Location, meta: &object_store::ObjectMeta) -> ObjectRef {
    ObjectRef { url: loc.url_of(&meta.location), size: meta.size, e_tag: meta.e_tag.clone() }
}

fn check_identity(expected: &ObjectRef, size: u64, e_tag: Option<&str>) -> Result<()> {
    if expected.size != size {
        return Err(Error::Changed {
            url: expected.url.clone(),
            detail: format!("size was {} bytes, now {size}", expected.size),
        });
    }
    if let (Some(want), Some(have)) = (expected.e_tag.as_deref(), e_tag)
        && want != have
    {
        return Err(Error::Changed {
            url: expected.url.clone(),
            detail: format!("ETag was {want}, now {have}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_become_file_urls() {
        let url = to_url("/tmp/a/../b/x.parquet").unwrap();
        assert_eq!(url.as_str(), "file:///tmp/b/x.parquet");
        assert!(to_url("ftp://x/y").unwrap_err().to_string().contains("unsupported scheme"));
        assert!(to_url("").is_err());
    }

    #[tokio::test]
    async fn intermediates_are_mapped_whole_or_in_ranges_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::new(StorageOptions::default());
        let location = dir.path().join("out.arrow").display().to_string();
        // Above the mapping threshold, and not a whole number of pages.
        let n = MAP_AT_LEAST as usize + 20_000;
        let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        let object = storage.put(&location, data.clone()).await.unwrap();
        // Whole, a range across page boundaries (not page-aligned), the last byte.
        let whole = storage.get_intermediate(&object, None).await.unwrap();
        assert_eq!(whole.as_ref(), &data[..]);
        let range = 4_095..MAP_AT_LEAST + 12_289;
        let part = storage.get_intermediate(&object, Some(range.clone())).await.unwrap();
        assert_eq!(part.as_ref(), &data[range.start as usize..range.end as usize]);
        // Below the threshold: read, not mapped; the same bytes.
        let last = storage.get_intermediate(&object, Some(n as u64 - 1..n as u64)).await.unwrap();
        assert_eq!(last.as_ref(), &data[n - 1..]);
        // Written again under the same name (a new file renamed into place): the mapping of the
        // old one is intact, and the old identity no longer matches the new object.
        storage.put(&location, vec![1u8; 10]).await.unwrap();
        assert_eq!(whole.as_ref(), &data[..]);
        let e = storage.get_intermediate(&object, None).await.unwrap_err().to_string();
        assert!(e.contains(&format!("size was {n} bytes, now 10")), "{e}");
        // Deleted while mapped: still readable through the mapping.
        std::fs::remove_file(&location).unwrap();
        assert_eq!(&part[..3], &data[4_095..4_098]);
    }

    #[test]
    fn hidden_files_are_skipped() {
        assert!(is_hidden("_SUCCESS"));
        assert!(is_hidden("x/.tmp"));
        assert!(!is_hidden("part-00000.parquet"));
    }
}
