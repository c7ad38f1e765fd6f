//! `/metrics`: Prometheus metrics in the OpenMetrics text format.
//!
//! One custom collector reads the live counters of the backends in the
//! current table at scrape time: the table changes on reload, so nothing is
//! registered per backend. The read-ahead figures are the proxy's, all
//! backends together.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use tokio::time::Instant;

use crate::admin::view::{CompressionView, ReadAheadView};
use crate::health::fpm_status::FpmStatus;
use crate::http::budget::ByteBudget;
use crate::http::read_ahead::ReadAhead;
use crate::runtime::Workers;
use crate::session::verdict::ClusterReport;
use crate::upstream::Upstream;
use crate::upstream::backend::{Backend, State};

/// What the encoder writes, and so the Content-Type to send with it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reads the live figures of every backend at scrape time.
#[derive(Debug)]
pub struct UpstreamCollector {
    pub upstream: Arc<Upstream>,
    pub latest_report: Arc<ArcSwap<Option<ClusterReport>>>,
    pub read_ahead: Arc<ArcSwap<ReadAhead>>,
    pub compression_memory: Arc<ArcSwap<ByteBudget>>,
    pub started: Instant,
    pub workers: Option<Arc<Workers>>,
}

/// The registry with our collector; encode it per scrape.
pub fn registry(collector: UpstreamCollector) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    registry
}

/// One scrape, OpenMetrics text (ends with `# EOF`).
pub fn render(registry: &Registry) -> Result<String, fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

/// A counter family over backends: `value` reads one backend's figure.
fn counter_family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    backends: &[Arc<Backend>],
    value: impl Fn(&Backend) -> u64,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for b in backends {
        let labels = [("backend", b.name.as_str())];
        ConstCounter::new(value(b)).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge family over backends; backends for which `value` is None are left out.
fn gauge_family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    backends: &[Arc<Backend>],
    value: impl Fn(&Backend) -> Option<i64>,
) -> fmt::Result {
    let values: Vec<(&str, i64)> = backends
        .iter()
        .filter_map(|b| value(b).map(|v| (b.name.as_str(), v)))
        .collect();
    if values.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (backend, v) in values {
        let labels = [("backend", backend)];
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn flag(b: bool) -> Option<i64> {
    Some(i64::from(b))
}

fn int<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A php-fpm status figure, for backends whose status page was read.
fn fpm(b: &Backend, f: impl Fn(&FpmStatus) -> u64) -> Option<i64> {
    b.fpm_status().map(|s| int(f(&s)))
}

impl Collector for UpstreamCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let set = self.upstream.snapshot();
        let backends = &set.backends;
        let now = Instant::now();

        {
            let mut m = enc.encode_descriptor(
                "fpmlb_requests",
                "Responses from php-fpm, by backend and status class.",
                None,
                MetricType::Counter,
            )?;
            for b in backends {
                let s = &b.stats;
                for (class, c) in [
                    ("2xx", &s.responses_2xx),
                    ("3xx", &s.responses_3xx),
                    ("4xx", &s.responses_4xx),
                    ("5xx", &s.responses_5xx),
                ] {
                    let labels = [("backend", b.name.as_str()), ("class", class)];
                    ConstCounter::new(load(c)).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        counter_family(
            &mut enc,
            "fpmlb_backend_failures",
            "Failures of the backend itself: connect errors, resets, timeouts, protocol errors.",
            backends,
            |b| load(&b.stats.failures),
        )?;
        {
            let mut m = enc.encode_descriptor(
                "fpmlb_upstream_latency",
                "Upstream time of exchanges with php-fpm, to the response head.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for b in backends {
                let (cumulative, count, sum) = b.stats.latency.snapshot();
                // The encoder wants per-bucket counts and accumulates itself.
                let mut buckets = Vec::with_capacity(cumulative.len() + 1);
                let mut below = 0;
                for (bound, acc) in cumulative {
                    buckets.push((bound, acc.saturating_sub(below)));
                    below = acc;
                }
                buckets.push((f64::INFINITY, count.saturating_sub(below)));
                let labels = [("backend", b.name.as_str())];
                m.encode_family(&labels)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        sum, count, &buckets, None,
                    )?;
            }
        }
        gauge_family(
            &mut enc,
            "fpmlb_backend_up",
            "1 when the backend takes new requests (enabled, alive, session ok, not failing).",
            backends,
            |b| flag(b.state(now) == State::Up),
        )?;
        gauge_family(
            &mut enc,
            "fpmlb_backend_alive",
            "1 when liveness checks pass.",
            backends,
            |b| flag(b.is_alive()),
        )?;
        gauge_family(
            &mut enc,
            "fpmlb_backend_session_ok",
            "1 unless the session checker drained the backend.",
            backends,
            |b| flag(b.is_session_ok()),
        )?;
        gauge_family(
            &mut enc,
            "fpmlb_backend_enabled",
            "1 unless an operator drained the backend through the admin API.",
            backends,
            |b| flag(b.is_enabled()),
        )?;
        gauge_family(
            &mut enc,
            "fpmlb_backend_weight",
            "Share of requests the balancer gives the backend.",
            backends,
            |b| Some(i64::from(b.weight())),
        )?;
        {
            let mut m = enc.encode_descriptor(
                "fpmlb_pool_connections",
                "FastCGI connections to the backend: carrying a request, kept idle, or requests waiting for one.",
                None,
                MetricType::Gauge,
            )?;
            for b in backends {
                let f = b.pool.figures();
                for (state, v) in [
                    ("in_use", f.in_use),
                    ("idle", f.idle),
                    ("waiting", f.waiting),
                ] {
                    let labels = [("backend", b.name.as_str()), ("state", state)];
                    ConstGauge::new(int(v)).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        gauge_family(
            &mut enc,
            "fpmlb_pool_connection_cap",
            "Most FastCGI connections the backend may have open now.",
            backends,
            |b| Some(int(b.pool.figures().cap)),
        )?;
        gauge_family(
            &mut enc,
            "fpmlb_pool_connection_cap_learned",
            "A cap on FastCGI connections the backend's pool learnt for 30 s from a new connection \
             that waited for a php-fpm worker (others hold the rest of its workers, or max_conns \
             is above pm.max_children); absent when none holds.",
            backends,
            |b| b.pool.figures().learned.map(int),
        )?;
        counter_family(
            &mut enc,
            "fpmlb_pool_connections_opened",
            "FastCGI connections opened to the backend.",
            backends,
            |b| b.pool.figures().opened,
        )?;
        counter_family(
            &mut enc,
            "fpmlb_pool_connections_reused",
            "Exchanges that reused a kept-alive FastCGI connection.",
            backends,
            |b| b.pool.figures().reused,
        )?;
        counter_family(
            &mut enc,
            "fpmlb_pool_connections_given_back",
            "Kept-alive FastCGI connections closed to free a php-fpm worker for a new connection \
             waiting in the pool's listen queue (max_conns above pm.max_children).",
            backends,
            |b| b.pool.figures().given_back,
        )?;
        counter_family(
            &mut enc,
            "fpmlb_pool_connections_recycled",
            "Kept-alive FastCGI connections closed once 250 ms old, so that a php-fpm worker \
             goes to whoever else queued for one (another balancer, a cron job).",
            backends,
            |b| b.pool.figures().recycled,
        )?;
        counter_family(
            &mut enc,
            "fpmlb_pool_workers_busy_after_response",
            "Requests that waited 100 ms or more for a php-fpm worker still running the script \
             before them (sent whole with fastcgi_finish_request(), working on), and connections \
             held back 50 ms or more until such a script ended.",
            backends,
            |b| b.pool.figures().worked_on,
        )?;
        for (name, help, field) in FPM_GAUGES {
            gauge_family(&mut enc, name, help, backends, |b| fpm(b, field))?;
        }
        counter_family(
            &mut enc,
            "fpmlb_session_requests",
            "Requests that carried the session cookie.",
            backends,
            |b| load(&b.stats.session_requests),
        )?;
        counter_family(
            &mut enc,
            "fpmlb_session_resets",
            "Requests that carried the session cookie and got a new session id back: the backend did not find the session.",
            backends,
            |b| load(&b.stats.session_resets),
        )?;
        encode_read_ahead(&mut enc, &ReadAheadView::of(&self.read_ahead.load()))?;
        if let Some(workers) = &self.workers {
            let mut m = enc.encode_descriptor(
                "fpmlb_thread_connections",
                "Client connections each serving thread (`workers`) serves now.",
                None,
                MetricType::Gauge,
            )?;
            for (thread, open) in workers.open().into_iter().enumerate() {
                let thread = thread.to_string();
                let labels = [("thread", thread.as_str())];
                ConstGauge::new(int(open)).encode(m.encode_family(&labels)?)?;
            }
        }
        let compression = CompressionView::of(&self.compression_memory.load());
        for (name, help, v) in [
            (
                "fpmlb_compression_memory_held",
                "Bytes the compressors of the responses being compressed hold.",
                compression.memory_bytes,
            ),
            (
                "fpmlb_compression_memory_budget",
                "compression.max_memory: past it, a response takes a cheaper coding, or none.",
                compression.memory_budget_bytes,
            ),
        ] {
            let m = enc.encode_descriptor(name, help, Some(&Unit::Bytes), MetricType::Gauge)?;
            ConstGauge::new(int(v)).encode(m)?;
        }
        for (name, help, v) in [
            (
                "fpmlb_compression_cheaper_coding_for_memory",
                "Responses that took a cheaper coding the client accepts, for want of compression.max_memory.",
                compression.cheaper_coding_for_memory,
            ),
            (
                "fpmlb_compression_uncompressed_for_memory",
                "Responses that went uncompressed for want of compression.max_memory.",
                compression.uncompressed_for_memory,
            ),
        ] {
            let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v).encode(m)?;
        }
        if let Some(report) = self.latest_report.load().as_ref() {
            let m = enc.encode_descriptor(
                "fpmlb_session_cluster_ok",
                "1 when the latest session check found every node consistent and the store answering.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::from(report.is_ok())).encode(m)?;
        }
        let m = enc.encode_descriptor(
            "fpmlb_uptime",
            "Time since fpmlb started.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.started.elapsed().as_secs_f64()).encode(m)?;
        Ok(())
    }
}

/// Responses read ahead of their clients, all backends together.
fn encode_read_ahead(enc: &mut DescriptorEncoder<'_>, r: &ReadAheadView) -> fmt::Result {
    let counters = [
        (
            "fpmlb_read_ahead_streamed",
            "Responses streamed with read-ahead allowed: longer than what came with their head, \
             and not X-Accel-Buffering: no.",
            None,
            r.streamed,
        ),
        (
            "fpmlb_read_ahead_taken_over",
            "Streamed responses whose client lagged (took nothing for 25 ms), read ahead of it \
             from then on: their php-fpm worker was free at the response's end.",
            None,
            r.read_ahead,
        ),
        (
            "fpmlb_read_ahead_spilled",
            "Responses read ahead that went on to a temp file (past response_buffer_size, or the \
             64 MiB all responses share in memory).",
            None,
            r.spilled,
        ),
        (
            "fpmlb_read_ahead_waited",
            "Responses read ahead that hit a limit (response_max_temp_file, response_temp_total, a \
             failed write) and went at their client's pace for a while, holding their php-fpm worker.",
            None,
            r.waited,
        ),
        (
            "fpmlb_read_ahead_temp_written",
            "Bytes of responses written to temp files.",
            Some(Unit::Bytes),
            r.temp_file_bytes_written,
        ),
        (
            "fpmlb_read_ahead_temp_write_failures",
            "Temp files of responses that could not be made or written to (see the log).",
            None,
            r.temp_file_failures,
        ),
    ];
    for (name, help, unit, v) in counters {
        let m = enc.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
        ConstCounter::new(v).encode(m)?;
    }
    for (name, help, [memory, temp_file]) in [
        (
            "fpmlb_read_ahead_held",
            "Bytes of responses read ahead and not yet sent, in memory and in temp files.",
            [r.memory_bytes, r.temp_file_bytes],
        ),
        (
            "fpmlb_read_ahead_budget",
            "Most bytes all responses read ahead may hold together: 64 MiB in memory, \
             response_temp_total in temp files.",
            [r.memory_budget_bytes, r.temp_file_budget_bytes],
        ),
    ] {
        let mut m = enc.encode_descriptor(name, help, Some(&Unit::Bytes), MetricType::Gauge)?;
        for (store, v) in [("memory", memory), ("temp_file", temp_file)] {
            ConstGauge::new(int(v)).encode(m.encode_family(&[("store", store)])?)?;
        }
    }
    Ok(())
}

type FpmField = fn(&FpmStatus) -> u64;

/// php-fpm's own pool figures, as gauges (they reset when php-fpm restarts).
const FPM_GAUGES: [(&str, &str, FpmField); 8] = [
    (
        "fpmlb_fpm_active_processes",
        "php-fpm workers serving a request (php-fpm status page).",
        |s| s.active_processes,
    ),
    (
        "fpmlb_fpm_idle_processes",
        "php-fpm workers waiting for a request.",
        |s| s.idle_processes,
    ),
    (
        "fpmlb_fpm_total_processes",
        "php-fpm workers, active and idle.",
        |s| s.total_processes,
    ),
    (
        "fpmlb_fpm_listen_queue",
        "Connections waiting in the pool's listen backlog.",
        |s| s.listen_queue,
    ),
    (
        "fpmlb_fpm_max_listen_queue",
        "Most connections ever waiting in the pool's listen backlog since php-fpm started.",
        |s| s.max_listen_queue,
    ),
    (
        "fpmlb_fpm_max_children_reached",
        "Times php-fpm hit pm.max_children since it started.",
        |s| s.max_children_reached,
    ),
    (
        "fpmlb_fpm_slow_requests",
        "Requests slower than request_slowlog_timeout since php-fpm started.",
        |s| s.slow_requests,
    ),
    (
        "fpmlb_fpm_accepted_connections",
        "Connections the pool accepted since php-fpm started.",
        |s| s.accepted_conn,
    ),
];
