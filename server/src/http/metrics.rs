//! Request counters and latency histograms, lock-free (one atomic per cell),
//! rendered in the Prometheus text format for `GET /metrics`.

use core::fmt::Write as _;
#[cfg(target_has_atomic = "64")]
use core::sync::atomic::AtomicU64;
use core::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(target_has_atomic = "64"))]
use portable_atomic::AtomicU64;
use std::time::Duration;

/// The label every request is counted under: one per route, plus
/// `not_found` (no route matched) and `invalid` (the head did not parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // the variants are the `route` label values, listed in `name`
pub enum RouteId {
    KvPut,
    KvGet,
    KvHistory,
    KvDelete,
    KvScan,
    Ping,
    Status,
    Metrics,
    Digest,
    AdminCompact,
    AdminMembers,
    AdminBackup,
    Txn,
    Watch,
    CompatSet,
    CompatSetBatch,
    CompatGet,
    CompatDelete,
    CompatStore,
    CompatStoreKey,
    CompatStoreHash,
    CompatFetch,
    CompatFetchAll,
    CompatQuery,
    CompatPutPath,
    CompatGetPath,
    CompatDeletePath,
    CompatNodes,
    Page,
    ReadPass,
    NotFound,
    Invalid,
}

/// How many [`RouteId`] variants there are.
pub const ROUTES_COUNT: usize = RouteId::Invalid as usize + 1;

impl RouteId {
    /// The `route` label value.
    pub fn name(self) -> &'static str {
        match self {
            RouteId::KvPut => "kv_put",
            RouteId::KvGet => "kv_get",
            RouteId::KvHistory => "kv_history",
            RouteId::KvDelete => "kv_delete",
            RouteId::KvScan => "kv_scan",
            RouteId::Ping => "ping",
            RouteId::Status => "status",
            RouteId::Metrics => "metrics",
            RouteId::Digest => "digest",
            RouteId::AdminCompact => "admin_compact",
            RouteId::AdminMembers => "admin_members",
            RouteId::AdminBackup => "admin_backup",
            RouteId::Txn => "txn",
            RouteId::Watch => "watch",
            RouteId::CompatSet => "compat_set",
            RouteId::CompatSetBatch => "compat_set_batch",
            RouteId::CompatGet => "compat_get",
            RouteId::CompatDelete => "compat_delete",
            RouteId::CompatStore => "compat_store",
            RouteId::CompatStoreKey => "compat_store_key",
            RouteId::CompatStoreHash => "compat_store_hash",
            RouteId::CompatFetch => "compat_fetch",
            RouteId::CompatFetchAll => "compat_fetch_all",
            RouteId::CompatQuery => "compat_query",
            RouteId::CompatPutPath => "compat_put_path",
            RouteId::CompatGetPath => "compat_get_path",
            RouteId::CompatDeletePath => "compat_delete_path",
            RouteId::CompatNodes => "compat_nodes",
            RouteId::Page => "page",
            RouteId::ReadPass => "read_pass",
            RouteId::NotFound => "not_found",
            RouteId::Invalid => "invalid",
        }
    }

    const ALL: [RouteId; ROUTES_COUNT] = {
        use RouteId::*;
        [
            KvPut,
            KvGet,
            KvHistory,
            KvDelete,
            KvScan,
            Ping,
            Status,
            Metrics,
            Digest,
            AdminCompact,
            AdminMembers,
            AdminBackup,
            Txn,
            Watch,
            CompatSet,
            CompatSetBatch,
            CompatGet,
            CompatDelete,
            CompatStore,
            CompatStoreKey,
            CompatStoreHash,
            CompatFetch,
            CompatFetchAll,
            CompatQuery,
            CompatPutPath,
            CompatGetPath,
            CompatDeletePath,
            CompatNodes,
            Page,
            ReadPass,
            NotFound,
            Invalid,
        ]
    };
}

/// Statuses counted individually; anything else is counted as `status="other"`.
const STATUSES: [u16; 21] = [
    100, 200, 201, 204, 304, 400, 401, 404, 405, 408, 412, 413, 414, 415, 417, 431, 500, 501, 503,
    504, 505,
];
const STATUS_SLOTS: usize = STATUSES.len() + 1;

/// Upper bounds of the latency buckets, in microseconds (`+Inf` is implicit).
const BUCKETS_LE_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

const _: () = assert!(RouteId::ALL.len() == ROUTES_COUNT);

#[derive(Debug)]
struct Histogram {
    /// Non-cumulative counts; the last slot is over every bound (`+Inf` only).
    buckets: [AtomicU64; BUCKETS_LE_US.len() + 1],
    sum_us: AtomicU64,
}

/// Counters shared by every connection of one server.
#[derive(Debug)]
pub struct Metrics {
    requests: [[AtomicU64; STATUS_SLOTS]; ROUTES_COUNT],
    latency: [Histogram; ROUTES_COUNT],
    /// Open connections; also the count the connection cap is checked against.
    pub(crate) connections_open: AtomicUsize,
    connections_refused: AtomicU64,
    /// Watch streams open now, events sent, streams cut for not reading.
    pub(crate) watchers: AtomicUsize,
    pub(crate) watch_events: AtomicU64,
    pub(crate) watch_dropped: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: [const { [const { AtomicU64::new(0) }; STATUS_SLOTS] }; ROUTES_COUNT],
            latency: [const {
                Histogram {
                    buckets: [const { AtomicU64::new(0) }; BUCKETS_LE_US.len() + 1],
                    sum_us: AtomicU64::new(0),
                }
            }; ROUTES_COUNT],
            connections_open: AtomicUsize::new(0),
            connections_refused: AtomicU64::new(0),
            watchers: AtomicUsize::new(0),
            watch_events: AtomicU64::new(0),
            watch_dropped: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, route: RouteId, status: u16, elapsed: Duration) {
        let slot = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len());
        self.requests[route as usize][slot].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_LE_US
            .iter()
            .position(|le| micros <= *le)
            .unwrap_or(BUCKETS_LE_US.len());
        let histogram = &self.latency[route as usize];
        histogram.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        histogram.sum_us.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts a connection refused by the connection cap.
    pub fn record_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// How many requests `route` answered with `status` (for tests and health checks).
    pub fn requests(&self, route: RouteId, status: u16) -> u64 {
        let slot = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len());
        self.requests[route as usize][slot].load(Ordering::Relaxed)
    }

    /// Appends every series to `out` in Prometheus text format. Routes that have
    /// not answered a request yet are left out.
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP hypha_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE hypha_http_requests_total counter\n");
        for route in RouteId::ALL {
            for (slot, count) in self.requests[route as usize].iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let status = STATUSES.get(slot).map_or("other".into(), u16::to_string);
                    let name = route.name();
                    let _ = writeln!(
                        out,
                        "hypha_http_requests_total{{route=\"{name}\",status=\"{status}\"}} {count}"
                    );
                }
            }
        }
        out.push_str("# HELP hypha_http_request_duration_seconds Time from complete head to response written.\n");
        out.push_str("# TYPE hypha_http_request_duration_seconds histogram\n");
        for route in RouteId::ALL {
            self.render_histogram(out, route);
        }
        let conflicts = self.requests(RouteId::KvPut, 412) + self.requests(RouteId::KvDelete, 412);
        out.push_str(
            "# HELP hypha_cas_conflicts_total Conditional writes (If-Match, If-None-Match) \
             refused because the key was not as expected (412).\n",
        );
        out.push_str("# TYPE hypha_cas_conflicts_total counter\n");
        let _ = writeln!(out, "hypha_cas_conflicts_total {conflicts}");
        let watch = [
            (
                "hypha_watchers",
                "gauge",
                "Watch streams open now.",
                self.watchers.load(Ordering::Relaxed) as u64,
            ),
            (
                "hypha_watch_events_total",
                "counter",
                "Watch events sent.",
                self.watch_events.load(Ordering::Relaxed),
            ),
            (
                "hypha_watch_dropped_total",
                "counter",
                "Watch streams cut because the client stopped reading.",
                self.watch_dropped.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in watch {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let open = self.connections_open.load(Ordering::Relaxed);
        let refused = self.connections_refused.load(Ordering::Relaxed);
        out.push_str("# HELP hypha_http_connections_open Client connections open now.\n");
        out.push_str("# TYPE hypha_http_connections_open gauge\n");
        let _ = writeln!(out, "hypha_http_connections_open {open}");
        out.push_str(
            "# HELP hypha_http_connections_refused_total Connections refused by connections_max.\n",
        );
        out.push_str("# TYPE hypha_http_connections_refused_total counter\n");
        let _ = writeln!(out, "hypha_http_connections_refused_total {refused}");
    }

    fn render_histogram(&self, out: &mut String, route: RouteId) {
        let histogram = &self.latency[route as usize];
        let counts: Vec<u64> = histogram
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return;
        }
        let name = route.name();
        let mut cumulative = 0;
        for (le_us, count) in BUCKETS_LE_US.iter().zip(&counts) {
            cumulative += count;
            let le = *le_us as f64 / 1e6;
            let _ = writeln!(out, "hypha_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "hypha_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"+Inf\"}} {total}"
        );
        let sum = histogram.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "hypha_http_request_duration_seconds_sum{{route=\"{name}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "hypha_http_request_duration_seconds_count{{route=\"{name}\"}} {total}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_cumulative_buckets_render() {
        let metrics = Metrics::default();
        metrics.record(RouteId::KvGet, 200, Duration::from_micros(300));
        metrics.record(RouteId::KvGet, 200, Duration::from_millis(3));
        metrics.record(RouteId::KvGet, 404, Duration::from_secs(60));
        metrics.record(RouteId::Ping, 299, Duration::ZERO);
        let mut out = String::new();
        metrics.render(&mut out);
        for line in [
            "hypha_http_requests_total{route=\"kv_get\",status=\"200\"} 2",
            "hypha_http_requests_total{route=\"kv_get\",status=\"404\"} 1",
            "hypha_http_requests_total{route=\"ping\",status=\"other\"} 1",
            "hypha_http_request_duration_seconds_bucket{route=\"kv_get\",le=\"0.0005\"} 1",
            "hypha_http_request_duration_seconds_bucket{route=\"kv_get\",le=\"0.005\"} 2",
            "hypha_http_request_duration_seconds_bucket{route=\"kv_get\",le=\"10\"} 2",
            "hypha_http_request_duration_seconds_bucket{route=\"kv_get\",le=\"+Inf\"} 3",
            "hypha_http_request_duration_seconds_count{route=\"kv_get\"} 3",
            "hypha_http_connections_open 0",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        assert!(!out.contains("route=\"kv_put\""));
        assert_eq!(metrics.requests(RouteId::KvGet, 200), 2);
    }

    #[test]
    fn route_names_are_unique() {
        let mut names: Vec<&str> = RouteId::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ROUTES_COUNT);
        assert!(RouteId::ALL
            .iter()
            .enumerate()
            .all(|(i, r)| *r as usize == i));
    }
}
