//! Logging setup: `tracing` events to stderr, as text for people or JSON lines for collectors.
//!
//! stderr rather than stdout so that commands whose output is meant for scripts (such as
//! `ketang token`) stay clean even if they log.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. `RUST_LOG`, when set and valid, replaces `log.filter`.
/// A second call (tests, or an embedding program that set its own) changes nothing.
pub fn init(log: &LogConfig) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, warning) = build_filter(rust_log.as_deref(), &log.filter);
    let layer = match log.format {
        // Colours only for a terminal: log files and journald get plain text.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        // Span fields carry the room and peer ids; without the span list they would only be
        // visible on events logged directly inside the innermost span.
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init()
        .is_ok();
    if installed && let Some(w) = warning {
        tracing::warn!("{w}");
    }
}

/// The filter to use, and a warning to log once logging works if `RUST_LOG` was unusable.
fn build_filter(rust_log: Option<&str>, configured: &str) -> (EnvFilter, Option<String>) {
    let mut warning = None;
    if let Some(env) = rust_log.filter(|s| !s.trim().is_empty()) {
        match EnvFilter::try_new(env) {
            Ok(f) => return (f, None),
            Err(e) => {
                warning = Some(format!(
                    "ignoring RUST_LOG={env:?} ({e}); using log.filter={configured:?}"
                ));
            }
        }
    }
    // Config validation already parsed log.filter; "info" only guards direct callers.
    let filter = EnvFilter::try_new(configured).unwrap_or_else(|_| EnvFilter::new("info"));
    (filter, warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_overrides_the_configured_filter() {
        let (f, w) = build_filter(Some("ketang=trace"), "info");
        assert_eq!(f.to_string(), "ketang=trace");
        assert!(w.is_none());
        let (f, _) = build_filter(None, "warn,ketang_sfu=debug");
        assert_eq!(f.to_string(), "ketang_sfu=debug,warn");
        let (f, _) = build_filter(Some("  "), "warn");
        assert_eq!(f.to_string(), "warn");
    }

    #[test]
    fn an_unusable_rust_log_falls_back_with_a_warning() {
        let (f, w) = build_filter(Some("info,[bad"), "debug");
        assert_eq!(f.to_string(), "debug");
        assert!(w.is_some_and(|w| w.contains("RUST_LOG")));
    }

    #[test]
    fn init_can_be_called_twice() {
        init(&LogConfig::default());
        init(&LogConfig {
            format: LogFormat::Json,
            filter: "debug".to_owned(),
        });
        tracing::info!("still logging after a second init");
    }
}
