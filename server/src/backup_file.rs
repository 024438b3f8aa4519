//! The backup file (`hypha backup FILE`, `hypha restore FILE`):
//! newline-delimited JSON, checked whole before anything is restored.
//!
//! ```text
//! {"hypha_backup":1,"upto":SEQ,"node":ADDR,"taken_ms":T}      header
//! {"seq":S,"key":B64,"value":B64[,"deadline_ms":D]}          one per live key, seq order
//! {"end":true,"records":N,"digest":"HEX16"}                   trailer
//! ```
//!
//! The digest is the engine's (`hash::pair_hash(key, 0, value)` summed,
//! wrapping) over the records: what `/digest` says of a store holding
//! exactly these pairs (plus, in a failover group, its system keys).

use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{BufRead, Read};

/// The format written and read here.
pub const BACKUP_FORMAT: u64 = 1;
/// The longest line [`check`] reads: a 16 MiB value in base64 and its JSON.
pub const BACKUP_LINE_BYTES_MAX: usize = 24 << 20;

fn b64(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("bad base64: {e}"))
}

/// A record's key and value.
pub fn pair(record: &Value) -> Result<(Vec<u8>, Vec<u8>), String> {
    let key = b64(record["key"].as_str().ok_or("a record without a key")?)?;
    let value = b64(record["value"].as_str().ok_or("a record without a value")?)?;
    Ok((key, value))
}

/// A record's part of the digest.
pub fn pair_hash(record: &Value) -> Result<u64, String> {
    let (key, value) = pair(record)?;
    Ok(hypha_engine::hash::pair_hash(&key, 0, &value))
}

/// The first line.
pub fn header(upto: u64, node: &str, taken_ms: u64) -> Value {
    json!({"hypha_backup": BACKUP_FORMAT, "upto": upto, "node": node, "taken_ms": taken_ms})
}

/// The last line.
pub fn trailer(records: u64, digest: u64) -> Value {
    json!({"end": true, "records": records, "digest": format!("{digest:016x}")})
}

/// What checking a whole backup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// The seq the copy is of.
    pub upto: u64,
    /// How many records it holds.
    pub records: u64,
    /// Their digest.
    pub digest: u64,
}

/// Reads one line of at most [`BACKUP_LINE_BYTES_MAX`] bytes as JSON.
fn next_line(r: &mut impl BufRead) -> Result<Option<Value>, String> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(BACKUP_LINE_BYTES_MAX as u64 + 1)
        .read_until(b'\n', &mut buf)
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() > BACKUP_LINE_BYTES_MAX {
        return Err(format!("a line is over {BACKUP_LINE_BYTES_MAX} bytes"));
    }
    serde_json::from_slice(&buf)
        .map(Some)
        .map_err(|e| format!("a line is not JSON: {e}"))
}

/// The records of a backup, one at a time, after its header; the trailer
/// ends them. Use on a file [`check`] accepted (it holds one record in
/// memory at a time).
pub struct Records<R> {
    r: R,
    /// The header's seq.
    pub upto: u64,
    last: u64,
    ended: bool,
}

/// Reads the header of a backup and returns its records.
pub fn records<R: BufRead>(mut r: R) -> Result<Records<R>, String> {
    let header = next_line(&mut r)?.ok_or("it is empty")?;
    if header["hypha_backup"] != json!(BACKUP_FORMAT) {
        return Err(format!(
            "its header says format {}, this hypha reads format {BACKUP_FORMAT}",
            header["hypha_backup"]
        ));
    }
    let upto = header["upto"].as_u64().ok_or("its header has no upto")?;
    Ok(Records {
        r,
        upto,
        last: 0,
        ended: false,
    })
}

impl<R: BufRead> Records<R> {
    /// The next line: a record, or the trailer (then `ended` is set).
    fn step(&mut self) -> Result<Value, String> {
        let line =
            next_line(&mut self.r)?.ok_or("it ends before its trailer (a copy cut short?)")?;
        if line["end"] == json!(true) {
            self.ended = true;
            return Ok(line);
        }
        let seq = line["seq"].as_u64().ok_or("a record without a seq")?;
        if seq <= self.last || seq > self.upto {
            return Err(format!(
                "record seq {seq} out of order (after {}, up to {})",
                self.last, self.upto
            ));
        }
        self.last = seq;
        pair(&line)?;
        Ok(line)
    }
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = Result<Value, String>;

    fn next(&mut self) -> Option<Result<Value, String>> {
        if self.ended {
            return None;
        }
        match self.step() {
            Ok(_) if self.ended => None,
            Ok(line) => Some(Ok(line)),
            Err(e) => {
                self.ended = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads and checks a whole backup in one pass, holding one line at a
/// time: header, every record (key and value decode, seqs ascend), the
/// trailer (count and digest), nothing after it.
pub fn check(mut r: impl BufRead) -> Result<Checked, String> {
    let mut it = records(&mut r)?;
    let (mut n, mut digest) = (0u64, 0u64);
    loop {
        let line = it.step()?;
        match it.ended {
            true => {
                let (count, want) = (line["records"].as_u64(), line["digest"].as_str());
                if count != Some(n) || want != Some(&format!("{digest:016x}")) {
                    return Err(format!(
                        "{n} records with digest {digest:016x}, but the trailer says \
                         {count:?} and {want:?}"
                    ));
                }
                let upto = it.upto;
                return match next_line(&mut r)? {
                    None => Ok(Checked {
                        upto,
                        records: n,
                        digest,
                    }),
                    Some(_) => Err("something follows its trailer".into()),
                };
            }
            false => {
                n += 1;
                digest = digest.wrapping_add(pair_hash(&line)?);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)] // a test fails loudly
mod tests {
    use super::*;

    fn records_in(lines: &[Value]) -> Vec<Value> {
        lines[1..lines.len() - 1].to_vec()
    }

    fn file(lines: &[Value]) -> Vec<u8> {
        lines
            .iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect()
    }

    #[test]
    fn a_whole_file_checks_and_any_change_is_refused() {
        let recs = [
            json!({"seq": 3, "key": "YQ==", "value": "MQ=="}),
            json!({"seq": 9, "key": "Yg==", "value": "Mg==", "deadline_ms": 5}),
        ];
        let digest = recs
            .iter()
            .fold(0u64, |d, r| d.wrapping_add(pair_hash(r).expect("pair")));
        let mut lines = vec![header(10, "n", 1)];
        lines.extend(recs.iter().cloned());
        lines.push(trailer(2, digest));
        let checked = check(file(&lines).as_slice()).expect("whole");
        assert_eq!(
            (checked.upto, checked.records, checked.digest),
            (10, 2, digest)
        );
        let bytes = file(&lines);
        let read: Vec<Value> = records(bytes.as_slice())
            .expect("header")
            .collect::<Result<_, _>>()
            .expect("records");
        assert_eq!(read, records_in(&lines));
        let mut changed = lines.clone();
        changed[1]["value"] = json!("Mw==");
        assert!(check(file(&changed).as_slice())
            .unwrap_err()
            .contains("digest"));
        assert!(check(file(&lines[..3]).as_slice())
            .unwrap_err()
            .contains("trailer"));
        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        assert!(check(file(&swapped).as_slice())
            .unwrap_err()
            .contains("order"));
        let mut newer = lines.clone();
        newer[0]["hypha_backup"] = json!(2);
        assert!(check(file(&newer).as_slice())
            .unwrap_err()
            .contains("format 2"));
    }
}
