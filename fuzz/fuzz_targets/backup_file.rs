//! `hypha restore` reads a backup file from disk (`backup_file::check`,
//! then `backup_file::records`): whatever the bytes, it answers a checked
//! backup or an error, never a panic; a file it accepts yields exactly the
//! records it counted, and written out again line by line it is accepted
//! again with the same count, digest and seq.
#![no_main]

use hypha_server::backup_file::{check, header, records, trailer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(checked) = check(data) else {
        return;
    };
    let read: Vec<_> = records(data)
        .expect("an accepted file has a header")
        .collect::<Result<_, _>>()
        .expect("an accepted file's records read again");
    assert_eq!(read.len() as u64, checked.records);
    let mut again = format!("{}\n", header(checked.upto, "n", 0));
    for r in &read {
        again.push_str(&format!("{r}\n"));
    }
    again.push_str(&format!("{}\n", trailer(checked.records, checked.digest)));
    assert_eq!(check(again.as_bytes()), Ok(checked));
});
