//! Where Bags come from: `client.bag().read_text(…)` (one item per line), `read_json(…)`
//! (JSON lines, one item per line), `from_sequence(items, npartitions)` (items given in the
//! program, stored under the job root so that tasks read them like any file), and a
//! DataFrame's rows (`DataFrame::to_bag`, in the parent module).

use super::Bag;
use super::plan::BagPlan;
use crate::client::Client;
use crate::collections::dataframe::read::{DEFAULT_BLOCKSIZE, list_some, text_partitions};
use crate::error::{Error, Result};
use serde_json::Value;
use shoal_protocol::{FileFormat, LinesOptions, ObjectRef};
use shoal_worker::io::textfile::{Compression, TextEncoding};

/// The Bag sources of a client: `client.bag()`.
#[derive(Debug, Clone, Copy)]
pub struct Bags<'a> {
    client: &'a Client,
}

/// Options of `read_text` and `read_json`.
#[derive(Debug, Clone, Default)]
pub struct TextRead {
    /// Uncompressed files larger than this are read in blocks of about it, cut at line ends
    /// (`None`: 64 MB, as Dask; `Some(0)`: one partition per file).
    pub blocksize: Option<u64>,
    /// The text encoding (`utf-8`, `latin-1`, any WHATWG label); UTF-8 by default.
    pub encoding: Option<String>,
    /// JSON lines only: skip lines that are not JSON (counted in the run report as records
    /// skipped) instead of failing on the first, which is named by file and line.
    pub skip_errors: bool,
}

impl Client {
    /// Bag sources: `read_text`, `read_json`, `from_sequence`.
    pub fn bag(&self) -> Bags<'_> {
        Bags { client: self }
    }
}

impl Bags<'_> {
    /// One string item per line of the files at `location` (a file, a folder, or a glob), line
    /// terminators stripped. `.gz`, `.zst` and `.bz2` files are read whole.
    pub async fn read_text(&self, location: &str, options: TextRead) -> Result<Bag> {
        self.read_lines(location, options, false).await
    }

    /// One item per line of JSON-lines files (blank lines skipped).
    pub async fn read_json(&self, location: &str, options: TextRead) -> Result<Bag> {
        self.read_lines(location, options, true).await
    }

    async fn read_lines(&self, location: &str, options: TextRead, json: bool) -> Result<Bag> {
        if options.skip_errors && !json {
            return Err(Error::Invalid(format!("{location}: errors = \"skip\" applies to JSON lines only")));
        }
        let encoding = TextEncoding::from_label(options.encoding.as_deref())?;
        let objects = list_some(self.client, location).await?;
        let bytes = objects.iter().map(|o| o.size).sum();
        let blocksize = options.blocksize.unwrap_or(DEFAULT_BLOCKSIZE);
        let split = |o: &ObjectRef| Ok(Compression::of(&o.url).splittable() && encoding.ascii_compatible());
        let (_, partitions) = text_partitions(objects, blocksize, split)?;
        let format = FileFormat::Lines(LinesOptions {
            json,
            skip_errors: options.skip_errors,
            encoding: options.encoding,
        });
        let plan = BagPlan::Scan { source: location.to_string(), format, partitions, bytes };
        Ok(Bag::new(self.client.clone(), plan, Vec::new()))
    }

    /// A Bag of `items`, in `npartitions` partitions of nearly equal length (Dask's
    /// `from_sequence`). The items are written under the job root (`inputs/<sha256>.jsonl`,
    /// content-addressed, so the same items make the same tasks in every run).
    pub async fn from_sequence(&self, items: &[Value], npartitions: usize) -> Result<Bag> {
        let n = npartitions.clamp(1, items.len().max(1));
        let per = items.len().div_ceil(n).max(1);
        let storage = self.client.storage();
        let root = storage.resolve(self.client.root())?;
        let mut partitions = Vec::with_capacity(n);
        let mut bytes = 0;
        let chunks: Vec<&[Value]> = if items.is_empty() { vec![&[]] } else { items.chunks(per).collect() };
        for chunk in chunks {
            let mut text = Vec::new();
            for item in chunk {
                serde_json::to_writer(&mut text, item)
                    .map_err(|source| Error::Json { what: "an item of from_sequence".into(), source })?;
                text.push(b'\n');
            }
            let sha = shoal_functions::sha256_hex(&text);
            let url = root.join(&format!("inputs/{sha}.jsonl")).url;
            bytes += text.len() as u64;
            let object = match storage.head(&url).await {
                Ok(existing) => existing,
                Err(_) => storage.put(&url, bytes::Bytes::from(text)).await?,
            };
            partitions.push(vec![shoal_protocol::FileSlice::whole(object)]);
        }
        let format = FileFormat::Lines(LinesOptions { json: true, skip_errors: false, encoding: None });
        let plan = BagPlan::Scan { source: "from_sequence".into(), format, partitions, bytes };
        Ok(Bag::new(self.client.clone(), plan, Vec::new()))
    }
}
