//! hypha-engine in one page: the id API, the key API and history.
//!
//! Run: `cargo run -p hypha-engine --example basics`

use hypha_engine::{Db, Fsync, Options};

fn main() -> Result<(), hypha_engine::Error> {
    let dir = std::env::temp_dir().join(format!("hypha-example-{}", std::process::id()));
    let db = Db::open(
        &dir,
        Options {
            fsync: Fsync::Always,
            ..Options::default()
        },
    )?;

    // The OurDB-style id API: incremental ids from 1, history newest first.
    let ids = db.ids();
    let id = ids.set(None, b"first draft")?;
    ids.set(Some(id), b"second draft")?;
    println!(
        "id {id} holds {:?}",
        String::from_utf8_lossy(&ids.get(id)?.unwrap_or_default())
    );
    for v in ids.history(id, 10)? {
        println!(
            "  seq {}: {:?}",
            v.seq,
            v.value.map(|b| String::from_utf8_lossy(&b).into_owned())
        );
    }

    // The key API: binary-safe keys and values, every write gets a seq.
    let seq = db.put(b"sensor/42", b"21.5C")?;
    db.put(b"sensor/42", b"22.0C")?;
    db.delete(b"sensor/42")?;
    println!(
        "first write had seq {seq}; now the key is {:?}",
        db.get(b"sensor/42")?
    );
    for v in db.history(b"sensor/42", 10)? {
        println!(
            "  seq {}: {:?}",
            v.seq,
            v.value.map(|b| String::from_utf8_lossy(&b).into_owned())
        );
    }
    println!("{} live entries, digest {:016x}", db.len(), db.digest());

    db.close()?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
