//! Receive-side accounting of the load generator, one [`TrackRecv`] per received track.
//!
//! Data flow:
//!
//! ```text
//! webrtc-rs TrackRemote ──poll──▶ read_track task ──RTP──▶ TrackRecv::on_packet
//!      (one per received m-line)      │ LiveCounters        ├─ SeqWindow per SSRC: gaps, late fills, duplicates
//!                                     │ (packets, bytes)    ├─ frame stamps: frames, latency histogram
//!                                     └─ PLI until the      ├─ first keyframe: time to first frame
//!                                        first keyframe     └─ FreezeDetector (video)
//! ```
//!
//! Unlike [`crate::stats::ReceiveAccumulator`] (exact, unbounded sets for short functional
//! tests), everything here is constant-memory per track so hundreds of subscribers can run for
//! minutes: sequence numbers live in a 4096-packet bitmap, latencies in an `hdrhistogram`.
//!
//! Loss is counted twice (LiveKit-style "before and after retransmission"):
//! * **before**: every sequence gap the moment it opens (a packet arrives past a hole);
//! * **after**: holes still open at the end, i.e. packets never received even after the NACK
//!   retransmissions that filled the other holes (`expected - unique`).

use crate::live::LiveCounters;
use crate::media::{
    Stamp, now_unix_micros, parse_opus_payload, parse_vp8_descriptor, parse_vp8_frame,
};
use hdrhistogram::Histogram;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::shared::marshal::MarshalSize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// Sequence numbers remembered per SSRC (older arrivals count as too old).
const WINDOW: u64 = 4096;
/// Highest latency the histograms hold, µs (larger samples are clamped).
pub const MAX_LATENCY_US: u64 = 60_000_000;
/// Frames of history for the freeze threshold (W3C uses the last 30 rendered frames).
const FREEZE_HISTORY: usize = 30;

/// A new latency histogram (1 µs .. 60 s, 3 significant digits).
pub fn latency_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (low ≥ 1, high ≥ 2·low, sigfig ≤ 5).
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid constant histogram bounds")
}

/// Sequence-number window of one SSRC.
#[derive(Debug)]
struct SeqWindow {
    ssrc: u32,
    lowest: u64,
    highest: u64,
    bits: Vec<u64>,
    unique: u64,
}

/// What one arrival was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// In order or ahead; `gap` packets were skipped.
    New { gap: u64 },
    /// Filled an earlier hole (a retransmission or reordering).
    Late,
    /// Seen before.
    Duplicate,
    /// Older than the window.
    TooOld,
}

impl SeqWindow {
    fn new(ssrc: u32, seq: u16) -> SeqWindow {
        // Start one cycle up so early reordered packets do not underflow.
        let ext = (1 << 16) + u64::from(seq);
        let mut w = SeqWindow {
            ssrc,
            lowest: ext,
            highest: ext,
            bits: vec![0; (WINDOW / 64) as usize],
            unique: 1,
        };
        w.set(ext);
        w
    }

    fn slot(ext: u64) -> (usize, u64) {
        let i = ext % WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn set(&mut self, ext: u64) {
        let (w, b) = Self::slot(ext);
        self.bits[w] |= b;
    }

    fn is_set(&self, ext: u64) -> bool {
        let (w, b) = Self::slot(ext);
        self.bits[w] & b != 0
    }

    fn on(&mut self, seq: u16) -> Arrival {
        let delta = i64::from(seq.wrapping_sub(self.highest as u16) as i16);
        let ext = (self.highest as i64 + delta).max(0) as u64;
        if ext > self.highest {
            let gap = ext - self.highest - 1;
            // Clear the slots being reused (bounded by the window).
            for s in (self.highest + 1..ext).take(WINDOW as usize) {
                let (w, b) = Self::slot(s);
                self.bits[w] &= !b;
            }
            self.highest = ext;
            self.set(ext);
            self.unique += 1;
            return Arrival::New { gap };
        }
        if ext + WINDOW <= self.highest {
            return Arrival::TooOld;
        }
        if self.is_set(ext) {
            return Arrival::Duplicate;
        }
        self.set(ext);
        self.unique += 1;
        self.lowest = self.lowest.min(ext);
        Arrival::Late
    }

    fn expected(&self) -> u64 {
        self.highest - self.lowest + 1
    }
}

/// W3C-style freeze detection on frame arrival times.
#[derive(Debug, Default)]
struct FreezeDetector {
    last: Option<Instant>,
    intervals: Vec<f64>,
    next: usize,
    freezes: u64,
    freeze_ms: f64,
}

impl FreezeDetector {
    fn on_frame(&mut self, at: Instant) {
        if let Some(prev) = self.last {
            let d = at.saturating_duration_since(prev).as_secs_f64() * 1000.0;
            if self.intervals.len() >= 5 {
                let avg = self.intervals.iter().sum::<f64>() / self.intervals.len() as f64;
                if d >= (3.0 * avg).max(avg + 150.0) {
                    self.freezes += 1;
                    self.freeze_ms += d;
                }
            }
            if self.intervals.len() < FREEZE_HISTORY {
                self.intervals.push(d);
            } else {
                self.intervals[self.next] = d;
                self.next = (self.next + 1) % FREEZE_HISTORY;
            }
        }
        self.last = Some(at);
    }
}

/// Receive statistics of one track of one subscriber.
#[derive(Debug)]
pub struct TrackRecv {
    /// `audio` or `video`.
    pub kind: &'static str,
    /// Publisher peer id, when the server said (signaling); `None` for WHEP slots.
    pub publisher: Option<u64>,
    /// `mic`, `camera`, `screen`, or empty when unknown.
    pub source: String,
    /// Origin of time-to-first-frame.
    pub since: Instant,
    /// Packets delivered, duplicates included.
    pub packets: u64,
    /// RTP bytes (header + payload).
    pub bytes: u64,
    /// Loss before retransmission: packets missing when a later one arrived.
    pub gaps: u64,
    /// Holes filled later (retransmissions, reordering).
    pub late: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Arrivals older than the window.
    pub too_old: u64,
    /// Distinct synthetic frames.
    pub frames: u64,
    /// Frame-counter jumps that skipped frames (end-to-end frame loss, before any late fill).
    pub frames_skipped: u64,
    /// First keyframe (video) or first frame (audio), relative to `since`.
    pub first_frame: Option<Duration>,
    /// One-way latency of frames (µs), recorded only while measuring.
    pub latency: Histogram<u64>,
    /// First and last frame arrival.
    pub span: Option<(Instant, Instant)>,
    seqs: Vec<SeqWindow>,
    last_frame: Option<u64>,
    freeze: FreezeDetector,
}

impl TrackRecv {
    /// Empty statistics for a track of `kind` (`audio`/`video`).
    pub fn new(kind: &'static str, publisher: Option<u64>, source: &str, since: Instant) -> Self {
        TrackRecv {
            kind,
            publisher,
            source: source.to_owned(),
            since,
            packets: 0,
            bytes: 0,
            gaps: 0,
            late: 0,
            duplicates: 0,
            too_old: 0,
            frames: 0,
            frames_skipped: 0,
            first_frame: None,
            latency: latency_histogram(),
            span: None,
            seqs: Vec::new(),
            last_frame: None,
            freeze: FreezeDetector::default(),
        }
    }

    /// Packets expected from the sequence numbers seen (first to highest, per SSRC).
    pub fn expected(&self) -> u64 {
        self.seqs.iter().map(SeqWindow::expected).sum()
    }

    /// Loss after retransmission: holes still open.
    pub fn lost(&self) -> u64 {
        let unique: u64 = self.seqs.iter().map(|s| s.unique).sum();
        self.expected().saturating_sub(unique)
    }

    /// Freezes: count and total duration (ms).
    pub fn freezes(&self) -> (u64, f64) {
        (self.freeze.freezes, self.freeze.freeze_ms)
    }

    /// Account one RTP packet.
    pub fn on_packet(
        &mut self,
        ssrc: u32,
        seq: u16,
        payload: &[u8],
        wire_bytes: usize,
        measuring: bool,
    ) {
        let now = Instant::now();
        self.packets += 1;
        self.bytes += wire_bytes as u64;
        let arrival = match self.seqs.iter_mut().find(|s| s.ssrc == ssrc) {
            Some(w) => w.on(seq),
            None => {
                self.seqs.push(SeqWindow::new(ssrc, seq));
                Arrival::New { gap: 0 }
            }
        };
        match arrival {
            Arrival::New { gap } => self.gaps += gap,
            Arrival::Late => self.late += 1,
            Arrival::Duplicate => {
                self.duplicates += 1;
                return;
            }
            Arrival::TooOld => {
                self.too_old += 1;
                return;
            }
        }
        let (stamp, keyframe) = if self.kind == "audio" {
            (parse_opus_payload(payload), false)
        } else {
            match video_frame_start(payload) {
                Some(v) => v,
                None => return,
            }
        };
        let Some(stamp) = stamp else { return };
        self.on_frame(stamp, keyframe, now, measuring);
    }

    fn on_frame(&mut self, stamp: Stamp, keyframe: bool, now: Instant, measuring: bool) {
        let in_order = self.last_frame.is_none_or(|l| stamp.seq > l);
        if !in_order {
            return; // a late fill of a frame start: already counted as skipped
        }
        if let Some(l) = self.last_frame {
            self.frames_skipped += stamp.seq - l - 1;
        }
        self.last_frame = Some(stamp.seq);
        self.frames += 1;
        if self.first_frame.is_none() && (keyframe || self.kind == "audio") {
            self.first_frame = Some(now.saturating_duration_since(self.since));
        }
        if self.first_frame.is_some() {
            self.span = Some((self.span.map_or(now, |s| s.0), now));
            if self.kind == "video" {
                self.freeze.on_frame(now);
            }
        }
        if measuring {
            let us = stamp.latency_us(now_unix_micros()).max(1) as u64;
            self.latency.saturating_record(us.min(MAX_LATENCY_US));
        }
    }
}

/// For the first RTP packet of a VP8 frame: its stamp (if synthetic) and keyframe flag.
fn video_frame_start(payload: &[u8]) -> Option<(Option<Stamp>, bool)> {
    let desc = parse_vp8_descriptor(payload)?;
    if !desc.starts_frame() {
        return None;
    }
    let info = parse_vp8_frame(payload.get(desc.header_len..)?)?;
    Some((info.stamp, info.keyframe))
}

/// Shared handle of one track's statistics.
pub type SharedTrack = Arc<Mutex<TrackRecv>>;

/// Lock a track's statistics (a poisoned lock still holds plain counters).
pub fn lock_track(t: &SharedTrack) -> MutexGuard<'_, TrackRecv> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// Read a remote track until it ends, feeding `stats` and `live`. For video, a PLI is sent
/// every `pli_every` until the first keyframe (at most 10), as a browser does.
pub async fn read_track(
    track: Arc<dyn TrackRemote>,
    stats: SharedTrack,
    live: Arc<LiveCounters>,
    pli_every: Duration,
) {
    let video = lock_track(&stats).kind == "video";
    let mut next_pli = Instant::now();
    let mut plis = 0u32;
    // Bounded by the track's lifetime: `poll` returns None once the connection is closed.
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(pkt) = event else {
            if matches!(event, TrackRemoteEvent::OnEnded) {
                break;
            }
            continue;
        };
        let wire = pkt.payload.len() + pkt.header.marshal_size();
        live.on_received(wire);
        let need_key = {
            let mut s = lock_track(&stats);
            s.on_packet(
                pkt.header.ssrc,
                pkt.header.sequence_number,
                &pkt.payload,
                wire,
                live.is_measuring(),
            );
            video && s.first_frame.is_none()
        };
        if need_key && plis < 10 && Instant::now() >= next_pli {
            plis += 1;
            next_pli = Instant::now() + pli_every;
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: pkt.header.ssrc,
            };
            let _ = track.write_rtcp(vec![Box::new(pli)]).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{OpusConfig, OpusSource};

    #[test]
    fn gaps_late_fills_and_duplicates() {
        let mut t = TrackRecv::new("audio", Some(1), "mic", Instant::now());
        let mut src = OpusSource::new(&OpusConfig::default());
        let f: Vec<_> = (0..8).map(|_| src.next_frame()).collect();
        // 65534, 65535, (0 missing), 1, 2, 0 late, 2 duplicate, (3 never)
        for (seq, i) in [
            (65534u16, 0usize),
            (65535, 1),
            (1, 3),
            (2, 4),
            (0, 2),
            (2, 4),
            (4, 6),
        ] {
            t.on_packet(9, seq, &f[i].data, 52, true);
        }
        assert_eq!(t.packets, 7);
        assert_eq!(t.gaps, 2, "0 and 3 were missing when later packets came");
        assert_eq!(t.late, 1);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.expected(), 7);
        assert_eq!(t.lost(), 1, "only 3 stayed missing");
        assert_eq!(t.latency.len(), 5, "a late frame start records no latency");
        assert!(t.first_frame.is_some());
    }

    #[test]
    fn freezes_follow_the_w3c_threshold() {
        let mut d = FreezeDetector::default();
        let t0 = Instant::now();
        let mut t = t0;
        for _ in 0..10 {
            t += Duration::from_millis(33);
            d.on_frame(t);
        }
        t += Duration::from_millis(150); // < avg + 150 ms: not a freeze
        d.on_frame(t);
        assert_eq!(d.freezes, 0);
        t += Duration::from_millis(400);
        d.on_frame(t);
        assert_eq!(d.freezes, 1);
        assert!((d.freeze_ms - 400.0).abs() < 1.0);
    }
}
