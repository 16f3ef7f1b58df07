//! Text files as records: the compression a file's name says it has (`.gz`, `.zst`, `.bz2`),
//! its encoding (UTF-8, Latin-1, any label the WHATWG Encoding Standard knows), lines skipped
//! at its start, and blocks of a large file cut where records end.
//!
//! A block (`Block { start, end }`) holds the records that *start* in it: from the first line
//! start at or after `start`, up to the first record end at or after `end`. A record ends at a
//! line break outside quotes, so a quoted field with a line break in it is never cut: the block
//! that holds the record's start reads past `end` to its close. The block after it guesses its
//! own start without knowing the quoting before it (the first line start at or after its
//! `start`); each block checks that guess for the next one, from the quoting it tracked, and a
//! wrong guess is a Fatal error naming the file and offset — never a silently misread file.

use super::storage::Storage;
use crate::error::{Error, Result};
use bytes::Bytes;
use shoal_protocol::{Block, FileSlice, ObjectRef};
use std::io::Read;

/// How a file is compressed, from its name (pandas' `compression = "infer"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
}

impl Compression {
    /// From the file name's last extension.
    pub fn of(url: &str) -> Self {
        let name = url.rsplit('/').next().unwrap_or(url).to_ascii_lowercase();
        if name.ends_with(".gz") || name.ends_with(".gzip") {
            Compression::Gzip
        } else if name.ends_with(".zst") || name.ends_with(".zstd") {
            Compression::Zstd
        } else if name.ends_with(".bz2") {
            Compression::Bzip2
        } else {
            Compression::None
        }
    }

    /// Whether byte blocks of the stored file are blocks of its text: only when it is not
    /// compressed (a compressed stream cannot be entered in the middle).
    pub fn splittable(self) -> bool {
        self == Compression::None
    }

    /// The decompressed bytes of a whole file.
    pub fn decompress(self, url: &str, bytes: Bytes) -> Result<Bytes> {
        let mut out = Vec::new();
        let read = match self {
            Compression::None => return Ok(bytes),
            // Several gzip members one after another (as `cat a.gz b.gz` makes) are one file.
            Compression::Gzip => flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut out),
            Compression::Zstd => {
                zstd::stream::read::Decoder::new(&bytes[..]).and_then(|mut d| d.read_to_end(&mut out))
            }
            Compression::Bzip2 => bzip2::read::MultiBzDecoder::new(&bytes[..]).read_to_end(&mut out),
        };
        read.map_err(|e| Error::Corrupt {
            url: url.to_string(),
            message: format!("not a valid {self:?} file: {e}"),
        })?;
        Ok(Bytes::from(out))
    }
}

impl Compression {
    /// As much of the text as the first bytes of a (possibly truncated) file give, up to
    /// `limit` bytes: what schema inference samples.
    pub fn decompress_prefix(self, bytes: Bytes, limit: usize) -> Bytes {
        let mut reader: Box<dyn Read + '_> = match self {
            Compression::None => return bytes.slice(..bytes.len().min(limit)),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&bytes[..])),
            Compression::Zstd => match zstd::stream::read::Decoder::new(&bytes[..]) {
                Ok(d) => Box::new(d),
                Err(_) => return Bytes::new(),
            },
            Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(&bytes[..])),
        };
        let mut out = vec![0; limit];
        let mut filled = 0;
        // A truncated stream ends in an error: keep what came before it.
        while filled < limit {
            match reader.read(&mut out[filled..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => filled += n,
            }
        }
        out.truncate(filled);
        Bytes::from(out)
    }
}

/// The first records of `object` as UTF-8 text, for inferring its schema: its first `limit`
/// bytes (decompressed), decoded, without the skipped lines, cut after the last whole record;
/// and whether a quoted field in them holds a line break (so blocks of it would need the
/// quoting before them: such files are read whole).
pub async fn sample(
    storage: &Storage,
    object: &ObjectRef,
    encoding: Option<&str>,
    skip: usize,
    quoting: &Quoting,
    limit: u64,
) -> Result<(Bytes, bool)> {
    let encoding = TextEncoding::from_label(encoding)?;
    let compression = Compression::of(&object.url);
    let raw = storage.get_range(object, 0..object.size.min(limit)).await?;
    let complete = raw.len() as u64 >= object.size;
    let text = match (compression, complete) {
        (Compression::None, _) => raw,
        (c, true) => c.decompress(&object.url, raw)?,
        (c, false) => c.decompress_prefix(raw, 4 * limit as usize),
    };
    let text = skip_lines(text, skip);
    // Whole records only (a prefix ends mid-record), and at most a whole character.
    let mut ends = 0;
    let mut at = 0;
    let mut quoted_breaks = false;
    while let Some(end) = quoting.record_end(&text, at, at) {
        quoted_breaks |= text[at..end - 1].contains(&b'\n');
        at = end;
        ends = end;
    }
    let whole = if complete || ends == 0 { text } else { text.slice(..ends) };
    Ok((encoding.to_utf8(&object.url, whole)?, quoted_breaks))
}

/// A text encoding by label, checked when the job is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    Utf8,
    /// ISO-8859-1 exactly as Python's `latin-1`: every byte is the code point of its value.
    Latin1,
    /// Any other encoding of the WHATWG Encoding Standard (`cp1252`, `utf-16`, `shift_jis`, …).
    Other(&'static encoding_rs::Encoding),
}

impl TextEncoding {
    /// The encoding a label names; an unknown label is an error naming it.
    pub fn from_label(label: Option<&str>) -> Result<Self> {
        let Some(label) = label else { return Ok(TextEncoding::Utf8) };
        let norm = label.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match norm.as_str() {
            "utf-8" | "utf8" | "utf-8-sig" => TextEncoding::Utf8,
            "latin-1" | "latin1" | "l1" | "iso-8859-1" | "iso8859-1" | "8859" => TextEncoding::Latin1,
            _ => match encoding_rs::Encoding::for_label(norm.as_bytes()) {
                Some(e) if e == encoding_rs::UTF_8 => TextEncoding::Utf8,
                Some(e) => TextEncoding::Other(e),
                None => {
                    return Err(Error::Schema(format!(
                        "encoding '{label}' is not known (try utf-8, latin-1, cp1252, utf-16)"
                    )));
                }
            },
        })
    }

    /// Whether a line break is the byte `\n` and every other byte of it is a byte of the
    /// text's own characters (so lines and blocks can be found in the raw bytes).
    pub fn ascii_compatible(self) -> bool {
        match self {
            TextEncoding::Utf8 | TextEncoding::Latin1 => true,
            TextEncoding::Other(e) => e.is_ascii_compatible(),
        }
    }

    /// `bytes` as UTF-8, without a leading byte-order mark. UTF-8 is checked here so that a
    /// file in another encoding is named with a hint, not failed deep in a parser.
    pub fn to_utf8(self, url: &str, bytes: Bytes) -> Result<Bytes> {
        match self {
            TextEncoding::Utf8 => {
                let bytes = if bytes.starts_with(b"\xEF\xBB\xBF") { bytes.slice(3..) } else { bytes };
                if let Err(e) = std::str::from_utf8(&bytes) {
                    let at = e.valid_up_to();
                    let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                    return Err(Error::Corrupt {
                        url: url.to_string(),
                        message: format!(
                            "not UTF-8 (byte 0x{:02X} on line {line}); if the file is in another encoding, \
                             say which: encoding = \"latin-1\" (or \"cp1252\", …)",
                            bytes[at]
                        ),
                    });
                }
                Ok(bytes)
            }
            TextEncoding::Latin1 => {
                if bytes.is_ascii() {
                    return Ok(bytes);
                }
                Ok(Bytes::from(bytes.iter().map(|&b| b as char).collect::<String>().into_bytes()))
            }
            TextEncoding::Other(e) => {
                let (text, _, _) = e.decode(&bytes);
                Ok(Bytes::from(text.into_owned().into_bytes()))
            }
        }
    }
}

/// What records look like, for finding where they end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoting {
    pub delimiter: u8,
    /// `None`: nothing is quoted (JSON lines, where a line break is always escaped).
    pub quote: Option<u8>,
    pub escape: Option<u8>,
    pub comment: Option<u8>,
}

impl Quoting {
    /// Plain lines: every `\n` ends a record.
    pub const LINES: Quoting = Quoting { delimiter: b',', quote: None, escape: None, comment: None };

    /// The offset just past the first record end at or after `from`, scanning from `start`,
    /// which must be a record start; `None` if `bytes` ends first. A CSV state machine, as
    /// csv-core reads: a quote opens a quoted field only at the field's start; inside one, a
    /// doubled quote is a quote and the escape character makes the next byte literal.
    pub fn record_end(&self, bytes: &[u8], start: usize, from: usize) -> Option<usize> {
        #[derive(Clone, Copy, PartialEq)]
        enum S {
            RecordStart,
            FieldStart,
            Unquoted,
            Quoted,
            QuotedEscape,
            QuoteInQuoted,
            Comment,
        }
        let mut state = S::RecordStart;
        for (i, &b) in bytes.iter().enumerate().skip(start) {
            state = match state {
                S::RecordStart | S::FieldStart | S::Unquoted | S::QuoteInQuoted | S::Comment
                    if b == b'\n' =>
                {
                    if i + 1 >= from {
                        return Some(i + 1);
                    }
                    S::RecordStart
                }
                S::RecordStart if Some(b) == self.comment => S::Comment,
                S::RecordStart | S::FieldStart if Some(b) == self.quote => S::Quoted,
                S::RecordStart | S::FieldStart | S::Unquoted | S::QuoteInQuoted if b == self.delimiter => {
                    S::FieldStart
                }
                S::RecordStart | S::FieldStart | S::Unquoted => S::Unquoted,
                S::Quoted if Some(b) == self.escape && self.escape != self.quote => S::QuotedEscape,
                S::Quoted if Some(b) == self.quote => S::QuoteInQuoted,
                S::Quoted | S::QuotedEscape => S::Quoted,
                S::QuoteInQuoted if Some(b) == self.quote => S::Quoted,
                S::QuoteInQuoted => S::Unquoted,
                S::Comment => S::Comment,
            };
        }
        None
    }
}

/// Position just past the first `\n` at or after `from` (a line start), if any.
fn line_start_at_or_after(bytes: &[u8], from: usize) -> Option<usize> {
    if from == 0 {
        return Some(0);
    }
    bytes[from - 1..].iter().position(|&b| b == b'\n').map(|p| from + p)
}

/// The raw bytes of the records of `block` of `object` (see the module docs), fetched with as
/// few range reads as the records allow, and the offset in the file where they start.
pub async fn read_block(
    storage: &Storage,
    object: &ObjectRef,
    block: Block,
    quoting: &Quoting,
) -> Result<(u64, Bytes, u64)> {
    let size = object.size;
    let end = block.end.min(size);
    // Fetched from one byte before the block, to see whether it starts a line; and past its
    // end by a margin, grown while the last record has not closed.
    let from = block.start.saturating_sub(1);
    let mut margin = (64 << 10).max((end - block.start.min(end)) / 16);
    let mut requests = 0;
    loop {
        let to = (end + margin).min(size);
        let bytes = storage.get_range(object, from..to).await?;
        requests += 1;
        let rel = |offset: u64| (offset - from) as usize;
        let Some(start) = line_start_at_or_after(&bytes, rel(block.start)) else {
            // No line starts in this block: its records belong to the one before.
            if to == size {
                return Ok((size, Bytes::new(), requests));
            }
            margin *= 4;
            continue;
        };
        if from + start as u64 >= end && end < size {
            return Ok((from + start as u64, Bytes::new(), requests));
        }
        let record_end =
            if end >= size { Some(bytes.len()) } else { quoting.record_end(&bytes, start, rel(end)) };
        let record_end = match record_end {
            Some(e) => e,
            None if to == size => bytes.len(),
            None => {
                margin *= 4;
                continue;
            }
        };
        // The next block will start at the first line start at or after `end`: check it is
        // where this block's last record really ended.
        if end < size {
            let guess = line_start_at_or_after(&bytes, rel(end)).unwrap_or(bytes.len());
            if guess != record_end {
                return Err(Error::Corrupt {
                    url: object.url.clone(),
                    message: format!(
                        "a quoted field with a line break in it crosses byte {} of the file, where it is \
                         split into blocks; read it whole with blocksize = 0",
                        from + guess as u64
                    ),
                });
            }
        }
        return Ok((from + start as u64, bytes.slice(start..record_end), requests));
    }
}

/// The text of a file, or of one block of it, as UTF-8: decompressed, without its first
/// `skip` lines (only the file's start has them), decoded; with the byte offset in the file
/// where it starts and the bytes and requests it cost.
#[derive(Debug)]
pub struct Fetched {
    pub utf8: Bytes,
    pub offset: u64,
    pub bytes_read: u64,
    pub requests: u64,
}

/// Fetches the text of `file` (its block, if it has one that is not the whole file).
pub async fn fetch(
    storage: &Storage,
    file: &FileSlice,
    encoding: Option<&str>,
    quoting: &Quoting,
    skip: usize,
) -> Result<Fetched> {
    let url = &file.object.url;
    let encoding = TextEncoding::from_label(encoding)?;
    let (offset, raw, requests) = match file.block {
        Some(block) if block.start > 0 || block.end < file.object.size => {
            read_block(storage, &file.object, block, quoting).await?
        }
        _ => (0, storage.get(&file.object).await?, 1),
    };
    let bytes_read = raw.len() as u64;
    let text = Compression::of(url).decompress(url, raw)?;
    let text = if offset == 0 { skip_lines(text, skip) } else { text };
    Ok(Fetched { utf8: encoding.to_utf8(url, text)?, offset, bytes_read, requests })
}

/// `bytes` without its first `n` lines.
pub fn skip_lines(bytes: Bytes, n: usize) -> Bytes {
    let mut at = 0;
    for _ in 0..n {
        match bytes[at..].iter().position(|&b| b == b'\n') {
            Some(p) => at += p + 1,
            None => return Bytes::new(),
        }
    }
    bytes.slice(at..)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: Quoting = Quoting { delimiter: b',', quote: Some(b'"'), escape: None, comment: Some(b'#') };

    #[test]
    fn records_end_at_line_breaks_outside_quotes() {
        let text = b"a,b\n1,\"x\ny\"\n2,\"q\"\"\n\"\n3,5'11\"\n#c \"\n4,z\n";
        let mut ends = vec![];
        let mut at = 0;
        while let Some(e) = CSV.record_end(text, at, at) {
            ends.push(std::str::from_utf8(&text[at..e]).unwrap().to_string());
            at = e;
        }
        assert_eq!(ends, ["a,b\n", "1,\"x\ny\"\n", "2,\"q\"\"\n\"\n", "3,5'11\"\n", "#c \"\n", "4,z\n"]);
        let escaped = Quoting { escape: Some(b'\\'), ..CSV };
        assert_eq!(escaped.record_end(b"\"a\\\"\nb\"\nc\n", 0, 0), Some(8));
    }

    #[test]
    fn names_say_the_compression_and_labels_the_encoding() {
        assert_eq!(Compression::of("s3://b/x.csv.GZ"), Compression::Gzip);
        assert_eq!(Compression::of("x.jsonl.zst"), Compression::Zstd);
        assert_eq!(Compression::of("x.bz2"), Compression::Bzip2);
        assert_eq!(Compression::of("x.csv"), Compression::None);
        assert_eq!(TextEncoding::from_label(Some("Latin_1")).unwrap(), TextEncoding::Latin1);
        assert!(matches!(TextEncoding::from_label(Some("cp1252")).unwrap(), TextEncoding::Other(_)));
        let err = TextEncoding::from_label(Some("klingon")).unwrap_err().to_string();
        assert!(err.contains("klingon"), "{err}");
        let latin = TextEncoding::Latin1.to_utf8("x", Bytes::from_static(b"caf\xe9\x80")).unwrap();
        assert_eq!(std::str::from_utf8(&latin).unwrap(), "caf\u{e9}\u{80}");
        let err = TextEncoding::Utf8.to_utf8("x.csv", Bytes::from_static(b"a\nb\xe9\n")).unwrap_err();
        assert!(err.to_string().contains("line 2") && err.to_string().contains("latin-1"), "{err}");
        assert_eq!(skip_lines(Bytes::from_static(b"x\ny\nz"), 2), Bytes::from_static(b"z"));
    }
}
