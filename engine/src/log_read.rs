//! Reading records from the log: from the mapping of their file, from the
//! buffers for the newest records, or with `pread` for a sealed file beyond
//! the mapping budget (see `maps`).

use crate::datafile::DataFile;
use crate::error::Result;
use crate::files::Log;
use crate::limits::UNMAPPED_READ_BYTES;
use crate::location::Location;
use crate::record;
use std::borrow::Cow;

impl Log {
    /// The readable bytes of file `loc.file` from `loc.offset` on: up to
    /// the end of the written part or of the buffer if the file is mapped,
    /// else (a sealed file beyond the mapping budget) the record there, read
    /// with `pread`.
    pub(crate) fn at(&self, loc: Location) -> Result<Cow<'_, [u8]>> {
        let Some(f) = self.file(loc.file) else {
            return Ok(Cow::Borrowed(&[]));
        };
        let off = loc.offset as usize;
        if off < f.len as usize {
            let sealed = loc.file != self.last_no();
            let mapped = f.mapped();
            if let Some(b) = mapped.or_else(|| sealed.then(|| f.map_sealed(&self.maps))?) {
                f.touch(self.maps.now());
                return Ok(Cow::Borrowed(&b[off..]));
            }
            return read_record(f, loc.offset).map(Cow::Owned);
        }
        if loc.file != self.last_no() {
            return Ok(Cow::Borrowed(&[]));
        }
        let mut past = off - f.len as usize;
        if let Some(inf) = &self.inflight {
            if past < inf.bytes.len() {
                return Ok(Cow::Borrowed(&inf.bytes[past..]));
            }
            past -= inf.bytes.len();
        }
        Ok(Cow::Borrowed(self.buf.get(past..).unwrap_or(&[])))
    }

    /// Decodes and checks the record at `loc`.
    pub fn record(&self, loc: Location) -> Result<Rec<'_>> {
        let bytes = self.at(loc)?;
        match record::decode(&bytes) {
            Ok(Some(d)) => {
                let (header, key_len) = (d.header, d.key.len());
                Ok(Rec {
                    bytes,
                    header,
                    key_len,
                })
            }
            Ok(None) => Err(self.corrupted(
                loc,
                crate::CodecError::BadField {
                    what: "record runs past the end of its file",
                },
            )),
            Err(cause) => Err(self.corrupted(loc, cause)),
        }
    }

    /// Decodes the header and key at `loc` without the CRC check (probing the
    /// key index compares keys this way; the record returned is checked).
    /// `None` if there is no record there, or it cannot be read (logged).
    pub fn header_and_key(&self, loc: Location) -> Option<(record::Header, Cow<'_, [u8]>)> {
        let bytes = match self.at(loc) {
            Ok(b) => b,
            Err(e) => {
                log::error!("{e}");
                return None;
            }
        };
        let h = record::decode_header(&bytes).ok()??;
        let key = h.header_len()..h.header_len() + h.key_len as usize;
        bytes.get(key.clone())?;
        let key = match bytes {
            Cow::Borrowed(b) => Cow::Borrowed(&b[key]),
            Cow::Owned(mut v) => {
                v.truncate(key.end);
                v.drain(..key.start);
                Cow::Owned(v)
            }
        };
        Some((h, key))
    }
}

/// A checked record read from the log (see [`Log::record`]).
pub struct Rec<'a> {
    /// The record's bytes from its start (possibly more after it).
    bytes: Cow<'a, [u8]>,
    pub header: record::Header,
    key_len: usize,
}

impl Rec<'_> {
    pub fn key(&self) -> &[u8] {
        let at = self.header.header_len();
        &self.bytes[at..at + self.key_len]
    }

    pub fn value(&self) -> &[u8] {
        let at = self.header.header_len() + self.key_len;
        &self.bytes[at..self.header.record_len()]
    }

    /// Copies the record out.
    pub fn to_record(&self) -> record::Record {
        record::Decoded {
            header: self.header,
            key: self.key(),
            value: self.value(),
        }
        .to_record()
    }
}

/// The record at `offset` of a sealed file that is not mapped, read with
/// `pread` (one read for most records, two for a long one).
fn read_record(f: &DataFile, offset: u32) -> Result<Vec<u8>> {
    let mut bytes = f.read(offset, UNMAPPED_READ_BYTES)?;
    if let Ok(Some(h)) = record::decode_header(&bytes) {
        if h.record_len() > bytes.len() {
            bytes = f.read(offset, h.record_len())?;
        }
    }
    Ok(bytes)
}
