//! Process-wide live counters of a load run, shared by every client of the generator.
//!
//! Publishers add what they hand to webrtc-rs (`sent_*`), subscriber track readers add what
//! webrtc-rs delivered to them (`recv_*`). The orchestrator snapshots the counters at the start
//! and end of the measurement window and divides the difference by its length; the progress bar
//! does the same every half second. Relaxed atomics: each counter is independent and only read
//! for rates, so no ordering between them is needed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counters shared (via `Arc`) by every publisher and subscriber of one load run.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// RTP packets handed to webrtc-rs by publishers.
    pub sent_packets: AtomicU64,
    /// RTP bytes (header + payload) handed to webrtc-rs by publishers.
    pub sent_bytes: AtomicU64,
    /// RTP packets delivered to subscribers, duplicates included.
    pub recv_packets: AtomicU64,
    /// RTP bytes (header + payload) delivered to subscribers.
    pub recv_bytes: AtomicU64,
    /// True during the measurement window: latency samples are only recorded then.
    pub measuring: AtomicBool,
}

/// A copy of the counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveSnapshot {
    /// See [`LiveCounters::sent_packets`].
    pub sent_packets: u64,
    /// See [`LiveCounters::sent_bytes`].
    pub sent_bytes: u64,
    /// See [`LiveCounters::recv_packets`].
    pub recv_packets: u64,
    /// See [`LiveCounters::recv_bytes`].
    pub recv_bytes: u64,
}

impl LiveCounters {
    /// Count one packet sent.
    pub fn on_sent(&self, bytes: usize) {
        self.sent_packets.fetch_add(1, Ordering::Relaxed);
        self.sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Count one packet received.
    pub fn on_received(&self, bytes: usize) {
        self.recv_packets.fetch_add(1, Ordering::Relaxed);
        self.recv_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Whether latency samples should be recorded now.
    pub fn is_measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }

    /// Read all counters.
    pub fn snapshot(&self) -> LiveSnapshot {
        LiveSnapshot {
            sent_packets: self.sent_packets.load(Ordering::Relaxed),
            sent_bytes: self.sent_bytes.load(Ordering::Relaxed),
            recv_packets: self.recv_packets.load(Ordering::Relaxed),
            recv_bytes: self.recv_bytes.load(Ordering::Relaxed),
        }
    }
}

impl LiveSnapshot {
    /// Counter differences `self - earlier` (saturating).
    pub fn since(&self, earlier: &LiveSnapshot) -> LiveSnapshot {
        LiveSnapshot {
            sent_packets: self.sent_packets.saturating_sub(earlier.sent_packets),
            sent_bytes: self.sent_bytes.saturating_sub(earlier.sent_bytes),
            recv_packets: self.recv_packets.saturating_sub(earlier.recv_packets),
            recv_bytes: self.recv_bytes.saturating_sub(earlier.recv_bytes),
        }
    }
}
