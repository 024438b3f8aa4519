//! Records when the binary was built (`HYPHA_BUILD_UNIX_MS`): a node whose
//! clock reads earlier than that has no real-time clock set (a router that
//! booted in 1970) and must not judge expiry by it. `SOURCE_DATE_EPOCH`
//! (seconds), when set, stands for the build time (reproducible builds).

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let ms = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|s| s.saturating_mul(1000))
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        });
    println!("cargo:rustc-env=HYPHA_BUILD_UNIX_MS={ms}");
}
