//! HTTP requests by route and status, counted by a middleware around the whole router.
//!
//! The route is axum's matched path (`/whip/{room}`), never the raw URL: room names, session
//! ids and tokens would make every request its own series.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use dashmap::DashMap;

use super::text::{Kind, Writer};
use crate::state::AppState;

/// Upper bounds of the request duration histogram, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The label of requests no route matched (404s of any path).
const UNMATCHED: &str = "unmatched";

#[derive(Default)]
struct Series {
    count: AtomicU64,
    /// Microseconds, summed.
    sum_us: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
}

/// Request counters, one series per (route, method, status).
#[derive(Default)]
pub struct HttpMetrics {
    series: DashMap<(String, String, u16), Series>,
}

impl HttpMetrics {
    fn observe(&self, route: &str, method: &str, status: u16, took: std::time::Duration) {
        let key = (route.to_owned(), method.to_owned(), status);
        let s = self.series.entry(key).or_default();
        s.count.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        s.sum_us.fetch_add(us, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                s.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(super) fn write(&self, w: &mut Writer) {
        let mut rows: Vec<_> = self
            .series
            .iter()
            .map(|e| {
                let (route, method, status) = e.key().clone();
                let s = e.value();
                let buckets: Vec<u64> = s
                    .buckets
                    .iter()
                    .map(|b| b.load(Ordering::Relaxed))
                    .collect();
                let count = s.count.load(Ordering::Relaxed);
                let sum = s.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
                (route, method, status.to_string(), count, sum, buckets)
            })
            .collect();
        rows.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        w.family(
            "ketang_http_requests_total",
            Kind::Counter,
            "HTTP requests answered, by matched route, method and status.",
        );
        for (route, method, status, count, ..) in &rows {
            let labels = [
                ("route", route.as_str()),
                ("method", method),
                ("status", status),
            ];
            w.sample("ketang_http_requests_total", &labels, *count as f64);
        }
        w.family(
            "ketang_http_request_duration_seconds",
            Kind::Histogram,
            "Time to the response head (a WebSocket counts until its upgrade), by matched route.",
        );
        for (route, method, status, count, sum, buckets) in &rows {
            let base = [
                ("route", route.as_str()),
                ("method", method),
                ("status", status),
            ];
            for (le, n) in BUCKETS.iter().zip(buckets) {
                let le = le.to_string();
                let labels = [base[0], base[1], base[2], ("le", le.as_str())];
                w.sample(
                    "ketang_http_request_duration_seconds_bucket",
                    &labels,
                    *n as f64,
                );
            }
            let labels = [base[0], base[1], base[2], ("le", "+Inf")];
            let name = "ketang_http_request_duration_seconds";
            w.sample(&format!("{name}_bucket"), &labels, *count as f64);
            w.sample(&format!("{name}_sum"), &base, *sum);
            w.sample(&format!("{name}_count"), &base, *count as f64);
        }
    }
}

/// The method as a label: the standard ones, else `other` (any token is a valid method, and
/// each would be its own series).
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The middleware: times the request and counts it under its matched route.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |m| m.as_str().to_owned());
    let method = method_label(req.method()).to_owned();
    let response = next.run(req).await;
    state.metrics.http.observe(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::text::parse;
    use std::time::Duration;

    #[test]
    fn requests_are_counted_per_route_method_and_status() {
        let m = HttpMetrics::default();
        m.observe("/whip/{room}", "POST", 201, Duration::from_millis(3));
        m.observe("/whip/{room}", "POST", 201, Duration::from_millis(30));
        m.observe("/whip/{room}", "POST", 401, Duration::from_micros(200));
        m.observe(UNMATCHED, "GET", 404, Duration::from_micros(50));
        let mut w = Writer::default();
        m.write(&mut w);
        let p = parse(&w.finish()).expect("valid exposition");
        let whip = [("route", "/whip/{room}"), ("status", "201")];
        assert_eq!(p.sum("ketang_http_requests_total", &whip), 2.0);
        assert_eq!(p.sum("ketang_http_requests_total", &[]), 4.0);
        let le10ms = [whip[0], whip[1], ("le", "0.01")];
        assert_eq!(
            p.sum("ketang_http_request_duration_seconds_bucket", &le10ms),
            1.0
        );
        let sum = p.sum("ketang_http_request_duration_seconds_sum", &whip);
        assert!((sum - 0.033).abs() < 1e-9, "{sum}");
    }
}
