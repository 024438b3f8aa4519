//! `hypha compact --data DIR`: compacts a stopped node's data offline,
//! with its progress on stderr (`compact` without `--data` is the client's).

use super::{client, compaction_options};
use hypha_server::commands;

/// `hypha compact --data DIR`: compacts a stopped node's data.
pub fn run(raw: &[String]) -> Result<(), String> {
    let args = commands::get("compact").parse(raw)?;
    let data = std::path::PathBuf::from(args.need("data")?);
    // Master and worker keep the engine's files under DIR/db.
    let dir = if data.join("db").join("meta").exists() {
        data.join("db")
    } else {
        data.clone()
    };
    if !dir.join("meta").exists() {
        return Err(format!(
            "{} holds no hypha database (no meta file); give the --data DIR of a master or worker",
            data.display()
        ));
    }
    let opts = hypha_engine::Options {
        auto_compact: false,
        ..compaction_options(&args, hypha_engine::Options::default())?
    };
    let db = hypha_engine::Db::open(&dir, opts)
        .map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
    let r = compact_with_progress(&db).map_err(|e| format!("compaction failed: {e}"))?;
    db.close()
        .map_err(|e| format!("closing {}: {e}", dir.display()))?;
    println!(
        "compacted {}: {} -> {} bytes in {} ms ({} data files -> {}; kept {} records, dropped {}, of them {} deletes)",
        dir.display(),
        r.bytes_before,
        r.bytes_after,
        r.millis,
        r.files_in,
        r.files_out,
        r.kept,
        r.dropped,
        r.tombstones_dropped
    );
    Ok(())
}

/// Runs an offline compaction, showing its progress (bytes examined of the
/// input) on stderr meanwhile.
fn compact_with_progress(
    db: &hypha_engine::Db,
) -> Result<hypha_engine::CompactReport, hypha_engine::Error> {
    let finished = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut progress: Option<client::Progress> = None;
            let mut seen = 0;
            while !finished.load(std::sync::atomic::Ordering::Acquire) {
                if let Some((done, total)) = db.stats().compacting {
                    let p = progress
                        .get_or_insert_with(|| client::Progress::new("compact (bytes)", total));
                    p.add(done.saturating_sub(seen), done.saturating_sub(seen));
                    seen = done;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            if let Some(p) = progress.as_mut() {
                p.done();
            }
        });
        let r = db.compact();
        finished.store(true, std::sync::atomic::Ordering::Release);
        r
    })
}
