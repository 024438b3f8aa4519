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

/// A whole, checked backup.
#[derive(Debug)]
pub struct Checked {
    /// The seq the copy is of.
    pub upto: u64,
    /// Its records, in file order.
    pub records: Vec<Value>,
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

/// Reads and checks a whole backup: header, every record (key and value
/// decode, seqs ascend), trailer (count and digest).
pub fn check(mut r: impl BufRead) -> Result<Checked, String> {
    let header = next_line(&mut r)?.ok_or("it is empty")?;
    if header["hypha_backup"] != json!(BACKUP_FORMAT) {
        return Err(format!(
            "its header says format {}, this hypha reads format {BACKUP_FORMAT}",
            header["hypha_backup"]
        ));
    }
    let upto = header["upto"].as_u64().ok_or("its header has no upto")?;
    let (mut records, mut digest, mut last) = (Vec::new(), 0u64, 0u64);
    loop {
        let line = next_line(&mut r)?.ok_or("it ends before its trailer (a copy cut short?)")?;
        if line["end"] == json!(true) {
            let (n, want) = (line["records"].as_u64(), line["digest"].as_str());
            if n != Some(records.len() as u64) || want != Some(&format!("{digest:016x}")) {
                return Err(format!(
                    "{} records with digest {digest:016x}, but the trailer says {n:?} and {want:?}",
                    records.len()
                ));
            }
            return match next_line(&mut r)? {
                None => Ok(Checked { upto, records }),
                Some(_) => Err("something follows its trailer".into()),
            };
        }
        let seq = line["seq"].as_u64().ok_or("a record without a seq")?;
        if seq <= last || seq > upto {
            return Err(format!(
                "record seq {seq} out of order (after {last}, up to {upto})"
            ));
        }
        last = seq;
        digest = digest.wrapping_add(pair_hash(&line)?);
        records.push(line);
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)] // a test fails loudly
mod tests {
    use super::*;

    fn file(lines: &[Value]) -> Vec<u8> {
        lines
            .iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect()
    }

    #[test]
    fn a_whole_file_checks_and_any_change_is_refused() {
        let records = [
            json!({"seq": 3, "key": "YQ==", "value": "MQ=="}),
            json!({"seq": 9, "key": "Yg==", "value": "Mg==", "deadline_ms": 5}),
        ];
        let digest = records
            .iter()
            .fold(0u64, |d, r| d.wrapping_add(pair_hash(r).expect("pair")));
        let mut lines = vec![header(10, "n", 1)];
        lines.extend(records.iter().cloned());
        lines.push(trailer(2, digest));
        let checked = check(file(&lines).as_slice()).expect("whole");
        assert_eq!((checked.upto, checked.records.len()), (10, 2));
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
