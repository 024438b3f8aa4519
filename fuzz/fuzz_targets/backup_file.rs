//! `hypha restore` reads a backup file from disk (`backup_file::check`):
//! whatever the bytes, it answers a checked backup or an error, never a
//! panic; and a file it accepts, written out again line by line, is
//! accepted again with the same records.
#![no_main]

use hypha_server::backup_file::{check, header, pair_hash, trailer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(checked) = check(data) else {
        return;
    };
    let digest = checked
        .records
        .iter()
        .map(|r| pair_hash(r).expect("an accepted record decodes"))
        .fold(0u64, u64::wrapping_add);
    let mut again = format!("{}\n", header(checked.upto, "n", 0));
    for r in &checked.records {
        again.push_str(&format!("{r}\n"));
    }
    again.push_str(&format!("{}\n", trailer(checked.records.len() as u64, digest)));
    let twice = check(again.as_bytes()).expect("written again, accepted again");
    assert_eq!(twice.records, checked.records);
    assert_eq!(twice.upto, checked.upto);
});
