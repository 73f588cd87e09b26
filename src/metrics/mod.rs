//! Prometheus metrics (`GET /metrics`) and readiness (`GET /readyz`).
//!
//! A small registry of our own rather than the `metrics` crate with its Prometheus exporter:
//! most figures already exist as counters (the shards' atomics, the SFU snapshots each shard
//! publishes once a second, the recorder's counters) and are read when scraped, so a push-style
//! recorder would only copy them into a second store. That recorder is also process-global,
//! while tests run several servers in one process, each with its own figures. What is ours
//! alone (HTTP requests, signaling connections, recording bytes) lives in [`Metrics`], one per
//! server, in `AppState`.
//!
//! Nothing here runs per packet: the SFU counts into plain integers on its shard thread
//! (`ketang_sfu::SfuStats`), and the shard copies them out every `media::PUBLISH_EVERY`.

pub mod http;
mod process;
pub mod ready;
mod shards;
pub mod text;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;
use text::{Kind, Writer};

/// What only the server itself can count.
#[derive(Default)]
pub struct Metrics {
    /// `/readyz`'s database check, cached for a second.
    pub ready_db: ready::DbCheck,
    pub http: http::HttpMetrics,
    signaling_open: Arc<AtomicU64>,
    signaling_total: AtomicU64,
    recording_bytes: AtomicU64,
    /// Attendance observations dropped because the attendance task fell behind.
    attendance_dropped: std::sync::OnceLock<Arc<AtomicU64>>,
    /// RTMP pushes.
    pub rtmp: crate::ingest::IngestMetrics,
}

/// Held by a signaling connection while it is open.
pub struct ConnectionGuard(Arc<AtomicU64>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// A signaling WebSocket opened; it counts as open until the guard is dropped.
    pub fn signaling_connected(&self) -> ConnectionGuard {
        self.signaling_total.fetch_add(1, Ordering::Relaxed);
        self.signaling_open.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.signaling_open.clone())
    }

    /// A recording file was finished with `bytes` (the recording wiring calls this for each
    /// `RecordingStatus::Finished`).
    pub fn recording_finished(&self, bytes: u64) {
        self.recording_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Reports the attendance queue's drop counter (set once at start).
    pub fn watch_attendance(&self, dropped: Arc<AtomicU64>) {
        let _ = self.attendance_dropped.set(dropped);
    }
}

/// `GET /metrics`.
pub async fn handler(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(refused) = refuse(&state, &headers) {
        return refused;
    }
    let mut r = (StatusCode::OK, render(&state)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(text::CONTENT_TYPE),
    );
    r
}

/// `/metrics` needs `metrics.token` as a bearer token when one is set, and is open without
/// one only on a loopback listener.
fn refuse(state: &AppState, headers: &axum::http::HeaderMap) -> Option<Response> {
    let Some(expected) = state
        .config
        .metrics
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        if state.config.http.listen.ip().is_loopback() {
            return None;
        }
        return Some(
            (
                StatusCode::FORBIDDEN,
                "set metrics.token to read /metrics on a non-loopback listener\n",
            )
                .into_response(),
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return None;
    }
    let mut r = (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(r)
}

/// Compares without returning early on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The whole exposition.
pub fn render(state: &AppState) -> String {
    let mut w = Writer::default();
    let gauge = |w: &mut Writer, name: &str, help: &str, v: f64| {
        w.single(name, Kind::Gauge, help, v);
    };
    w.family("ketang_build_info", Kind::Gauge, "The running version.")
        .sample(
            "ketang_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
    gauge(
        &mut w,
        "ketang_uptime_seconds",
        "Seconds since the server started.",
        state.started.elapsed().as_secs_f64(),
    );
    gauge(
        &mut w,
        "ketang_shutting_down",
        "1 once a shutdown began (new joins are refused).",
        f64::from(u8::from(state.is_shutting_down())),
    );
    shards::write(&mut w, state.media.shards());
    let m = &state.metrics;
    gauge(
        &mut w,
        "ketang_signaling_connections",
        "Signaling WebSockets open now.",
        m.signaling_open.load(Ordering::Relaxed) as f64,
    );
    w.single(
        "ketang_signaling_connections_total",
        Kind::Counter,
        "Signaling WebSockets opened.",
        m.signaling_total.load(Ordering::Relaxed) as f64,
    );
    gauge(
        &mut w,
        "ketang_http_media_sessions",
        "WHIP and WHEP sessions live now.",
        state.http_sessions.len() as f64,
    );
    write_recording(&mut w, state);
    if let Some(t) = state.turn.get() {
        write_turn(&mut w, t.stats());
    }
    if let Some(d) = m.attendance_dropped.get() {
        w.single(
            "ketang_attendance_dropped_total",
            Kind::Counter,
            "Attendance observations dropped because the attendance writer fell behind.",
            d.load(Ordering::Relaxed) as f64,
        );
    }
    m.http.write(&mut w);
    if state.config.rtmp.enabled {
        m.rtmp.write(&mut w);
    }
    process::write(&mut w);
    w.finish()
}

/// The embedded TURN server (when it runs).
fn write_turn(w: &mut Writer, t: &crate::turn::TurnStats) {
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    w.single(
        "ketang_turn_allocations",
        Kind::Gauge,
        "TURN allocations now.",
        t.allocations.load(Ordering::Relaxed) as f64,
    );
    w.single(
        "ketang_turn_allocations_total",
        Kind::Counter,
        "TURN allocations made.",
        n(&t.allocations_total),
    );
    w.family(
        "ketang_turn_refused_total",
        Kind::Counter,
        "TURN requests and connections refused: forbidden (a peer that is not Ketang's media), \
         unauthorized (no, expired or wrong credential, stale nonce), quota (allocation limits), \
         connections (TCP/TLS connection limits).",
    );
    for (reason, v) in [
        ("forbidden", &t.refused_forbidden),
        ("unauthorized", &t.refused_unauthorized),
        ("quota", &t.refused_quota),
        ("connections", &t.connections_refused),
    ] {
        w.sample("ketang_turn_refused_total", &[("reason", reason)], n(v));
    }
}

fn write_recording(w: &mut Writer, state: &AppState) {
    let live = &state.library.live;
    w.single(
        "ketang_recorder_enabled",
        Kind::Gauge,
        "1 if this server records lessons.",
        f64::from(u8::from(live.enabled())),
    );
    w.single(
        "ketang_recording_bytes_total",
        Kind::Counter,
        "Bytes of recording files finished.",
        state.metrics.recording_bytes.load(Ordering::Relaxed) as f64,
    );
    let Some(s) = live.recorder_stats() else {
        return;
    };
    w.single(
        "ketang_recordings_active",
        Kind::Gauge,
        "Rooms the recorder writes now.",
        s.active as f64,
    );
    w.single(
        "ketang_recorder_events_total",
        Kind::Counter,
        "Media and control events the recorder handled.",
        s.events as f64,
    );
    w.family(
        "ketang_recordings_total",
        Kind::Counter,
        "Recordings that ended, by outcome (a failed one stopped on a write error).",
    )
    .sample(
        "ketang_recordings_total",
        &[("outcome", "finished")],
        s.finished as f64,
    )
    .sample(
        "ketang_recordings_total",
        &[("outcome", "failed")],
        s.failed as f64,
    );
    w.family(
        "ketang_recorder_discarded_events_total",
        Kind::Counter,
        "Events the recorder discarded: for a room it does not record, or whose recording failed.",
    )
    .sample(
        "ketang_recorder_discarded_events_total",
        &[("reason", "noRoom")],
        s.no_room as f64,
    )
    .sample(
        "ketang_recorder_discarded_events_total",
        &[("reason", "afterFailure")],
        s.after_failure as f64,
    );
}
