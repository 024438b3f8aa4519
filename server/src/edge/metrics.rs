//! The edge's lines of `/metrics`.

use super::Edge;
use hypha_net::CompactInfo;
use std::sync::atomic::Ordering;

/// A /metrics line per node: name, Prometheus type, value.
type CompactionGauge = (&'static str, &'static str, fn(&CompactInfo) -> f64);

impl Edge {
    /// The edge's part of `/metrics`: seqs, lag, terms, and each node's
    /// compaction and disk figures.
    pub(super) fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let master_seq = self.master_seq.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# TYPE hypha_master_seq gauge\nhypha_master_seq {master_seq}"
        );
        if self.failover() {
            let _ = writeln!(
                out,
                "# TYPE hypha_leader_changes_total counter\nhypha_leader_changes_total {}",
                self.leader_changes.load(Ordering::Relaxed)
            );
            let _ = writeln!(out, "# TYPE hypha_member_term gauge");
            for p in &self.members() {
                if let Some((_, term)) = p.welcome() {
                    let _ = writeln!(out, "hypha_member_term{{addr=\"{}\"}} {term}", p.addr);
                }
            }
        }
        let _ = writeln!(out, "# TYPE hypha_worker_lag_records gauge");
        for w in self.worker_list() {
            let lag = master_seq.saturating_sub(w.applied_seq.load(Ordering::Relaxed));
            let _ = writeln!(out, "hypha_worker_lag_records{{addr=\"{}\"}} {lag}", w.addr);
        }
        let infos = self
            .compaction
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let gauges: [CompactionGauge; 9] = [
            ("hypha_compactions_total", "counter", |i| {
                i.compactions as f64
            }),
            ("hypha_compaction_running", "gauge", |i| {
                (i.running_total_bytes > 0) as u8 as f64
            }),
            ("hypha_compaction_progress_ratio", "gauge", |i| {
                i.running_done_bytes as f64 / (i.running_total_bytes.max(1)) as f64
            }),
            ("hypha_data_bytes", "gauge", |i| i.data_bytes as f64),
            ("hypha_live_bytes", "gauge", |i| i.live_bytes as f64),
            ("hypha_disk_bytes", "gauge", |i| i.disk_bytes as f64),
            ("hypha_compaction_last_bytes_saved", "gauge", |i| {
                i.last_bytes_before.saturating_sub(i.last_bytes_after) as f64
            }),
            ("hypha_compaction_last_seconds", "gauge", |i| {
                i.last_millis as f64 / 1000.0
            }),
            ("hypha_expired_total", "counter", |i| i.expired as f64),
        ];
        for (name, kind, value) in gauges {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (addr, info) in &infos {
                let _ = writeln!(out, "{name}{{node=\"{addr}\"}} {}", value(info));
            }
        }
        let _ = writeln!(out, "# TYPE hypha_worker_healthy gauge");
        for w in self.worker_list() {
            let _ = writeln!(
                out,
                "hypha_worker_healthy{{addr=\"{}\"}} {}",
                w.addr,
                w.usable() as u8
            );
        }
    }
}
