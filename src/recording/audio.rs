//! Audio: every heard microphone decoded, placed on the recording's timeline, mixed and encoded
//! again as one Opus stream.
//!
//! ```text
//! Audio event ─► Track: unwrap ts, position = anchor + (ts − anchor ts)
//!                  └► pending (by seq) ─► libopus decode (PLC / FEC on loss) ─► PCM at position
//! horizon ─► Mixer: 20 ms frames up to the horizon: Σ tracks, soft clip ─► libopus encode
//! ```
//!
//! Positions are output sample indices (48 kHz) from the recording's start. A track is anchored
//! at its first packet's arrival and then follows its RTP clock, so jitter does not smear it;
//! when RTP time and arrival disagree by more than a second (a restarted sender, a timestamp
//! jump) it is anchored again. The horizon trails the newest arrival by the mix delay: that
//! delay is the jitter buffer — a missing packet is concealed only when the mix reaches it, and
//! what comes after its slot was mixed is counted late.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use ketang_sfu::TrackId;
use opus::{Application, Bitrate, Channels, Decoder, Encoder};

/// Samples per output frame (20 ms at 48 kHz).
pub(crate) const FRAME: i64 = 960;
const RATE: i64 = 48_000;
/// The longest Opus packet (120 ms).
const MAX_PACKET_SAMPLES: usize = 5_760;
/// Loss longer than this is left silent rather than concealed.
const MAX_PLC_SAMPLES: i64 = 6 * FRAME;
const REANCHOR_SAMPLES: i64 = RATE;
/// A track silent this long (and fully mixed) is dropped with its decoder.
const IDLE_SAMPLES: i64 = 10 * RATE;

/// A source packet as it was decoded, for per-track files.
pub(crate) struct RawAudio {
    pub track: TrackId,
    pub pos: i64,
    pub samples: i64,
    pub payload: Arc<[u8]>,
}

/// Counters of the audio path.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AudioStats {
    pub late_packets: u64,
    pub lost_packets: u64,
    pub concealed_samples: u64,
    pub decode_errors: u64,
}

struct Track {
    decoder: Decoder,
    /// (extended ts, position) of the anchor.
    anchor: (i64, i64),
    last_ts: i64,
    next_seq: Option<u64>,
    /// Where the next in-order packet's audio goes.
    next_pos: i64,
    last_frame: usize,
    pending: BTreeMap<u64, (i64, Arc<[u8]>)>,
    /// PCM from `buf_start` on.
    buf: VecDeque<f32>,
    buf_start: i64,
}

pub(crate) struct Mixer {
    tracks: HashMap<TrackId, Track>,
    encoder: Encoder,
    pre_skip: u16,
    /// Output mixed up to here (frame aligned).
    pub mixed: i64,
    pcm: Vec<f32>,
    pub stats: AudioStats,
}

impl Mixer {
    pub fn new(bitrate: u32) -> Result<Self, opus::Error> {
        let mut encoder = Encoder::new(48_000, Channels::Mono, Application::Audio)?;
        encoder.set_bitrate(Bitrate::Bits(bitrate.clamp(6_000, 510_000) as i32))?;
        let pre_skip = encoder.get_lookahead()?.clamp(0, i32::from(u16::MAX)) as u16;
        Ok(Mixer {
            tracks: HashMap::new(),
            encoder,
            pre_skip,
            mixed: 0,
            pcm: vec![0.0; MAX_PACKET_SAMPLES],
            stats: AudioStats::default(),
        })
    }

    /// OpusHead of the encoded stream (WebM CodecPrivate).
    pub fn opus_head(&self) -> Vec<u8> {
        opus_head(1, self.pre_skip)
    }

    /// The encoder's delay, for CodecDelay.
    /// Encoder lookahead in 48 kHz samples (Opus pre-skip).
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    pub fn codec_delay_ns(&self) -> u64 {
        u64::from(self.pre_skip) * 1_000_000_000 / RATE as u64
    }

    /// Adds one packet; `arrival` is its arrival position on the output timeline.
    pub fn push(
        &mut self,
        id: TrackId,
        seq: u64,
        ts: u32,
        arrival: i64,
        payload: Arc<[u8]>,
    ) -> Result<(), opus::Error> {
        let t = match self.tracks.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Track {
                decoder: Decoder::new(48_000, Channels::Mono)?,
                anchor: (i64::from(ts), arrival),
                last_ts: i64::from(ts),
                next_seq: None,
                next_pos: arrival,
                last_frame: FRAME as usize,
                pending: BTreeMap::new(),
                buf: VecDeque::new(),
                buf_start: self.mixed,
            }),
        };
        // Unwrap the 32-bit timestamp around the last one seen.
        let ext = t.last_ts + i64::from(ts.wrapping_sub(t.last_ts as u32) as i32);
        t.last_ts = ext;
        let mut pos = t.anchor.1 + (ext - t.anchor.0);
        if (pos - arrival).abs() > REANCHOR_SAMPLES {
            t.anchor = (ext, arrival);
            pos = arrival;
        }
        if t.next_seq.is_some_and(|n| seq < n) || t.pending.contains_key(&seq) {
            self.stats.late_packets += 1;
            return Ok(());
        }
        t.pending.insert(seq, (pos, payload));
        Ok(())
    }

    /// Decodes what is due, concealing losses the mix is about to reach, and mixes complete
    /// frames up to `horizon`. `None` as horizon: the end, decode and mix everything.
    pub fn pump(
        &mut self,
        horizon: Option<i64>,
        raw: Option<&mut Vec<RawAudio>>,
        out: &mut Vec<(i64, Vec<u8>)>,
    ) {
        let mut raw = raw;
        let mut end = self.mixed;
        for (id, t) in &mut self.tracks {
            while let Some(entry) = t.pending.first_entry() {
                let seq = *entry.key();
                let in_order = t.next_seq.is_none_or(|n| n == seq);
                if !in_order {
                    let due = horizon.is_none_or(|h| t.next_pos < h + FRAME);
                    if !due {
                        break;
                    }
                }
                let (pos, payload) = entry.remove();
                if !in_order {
                    conceal(t, seq, pos, &payload, &mut self.pcm, &mut self.stats);
                }
                let n = match t.decoder.decode_float(&payload, &mut self.pcm, false) {
                    Ok(n) => n,
                    Err(_) => {
                        self.stats.decode_errors += 1;
                        0
                    }
                };
                put(t, pos, &self.pcm[..n]);
                if n > 0 {
                    t.last_frame = n;
                }
                t.next_seq = Some(seq + 1);
                t.next_pos = pos + n as i64;
                if let Some(raw) = raw.as_deref_mut() {
                    raw.push(RawAudio {
                        track: *id,
                        pos,
                        samples: n as i64,
                        payload,
                    });
                }
            }
            end = end.max(t.buf_start + t.buf.len() as i64);
        }
        let target = match horizon {
            Some(h) => h,
            None => end + FRAME - 1,
        };
        while self.mixed + FRAME <= target {
            self.mix_frame(out);
        }
        let mixed = self.mixed;
        self.tracks.retain(|_, t| {
            !(t.pending.is_empty() && t.buf.is_empty() && t.next_pos + IDLE_SAMPLES < mixed)
        });
    }

    fn mix_frame(&mut self, out: &mut Vec<(i64, Vec<u8>)>) {
        let frame = &mut self.pcm[..FRAME as usize];
        frame.fill(0.0);
        for t in self.tracks.values_mut() {
            for s in frame.iter_mut() {
                match t.buf.pop_front() {
                    Some(x) => *s += x,
                    None => break,
                }
            }
            t.buf_start = self.mixed + FRAME;
        }
        for s in frame.iter_mut() {
            *s = soft_clip(*s);
        }
        let mut packet = vec![0u8; 1500];
        match self.encoder.encode_float(frame, &mut packet) {
            Ok(n) => {
                packet.truncate(n);
                out.push((self.mixed, packet));
            }
            Err(_) => self.stats.decode_errors += 1,
        }
        self.mixed += FRAME;
    }
}

/// Fills the gap before packet `seq` at `pos`: PLC for all but the last lost frame, which
/// in-band FEC in this packet may carry. A long gap stays silent.
fn conceal(t: &mut Track, seq: u64, pos: i64, payload: &[u8], pcm: &mut [f32], s: &mut AudioStats) {
    let gap = pos - t.next_pos;
    let lost = seq.saturating_sub(t.next_seq.unwrap_or(seq));
    s.lost_packets += lost;
    if gap <= 0 || gap > MAX_PLC_SAMPLES || lost == 0 {
        return;
    }
    let frame = (t.last_frame as i64).clamp(120, MAX_PACKET_SAMPLES as i64);
    let mut at = t.next_pos;
    while at + frame <= pos {
        let last = at + frame * 2 > pos;
        let n = frame as usize;
        let r = if last {
            t.decoder.decode_float(payload, &mut pcm[..n], true)
        } else {
            t.decoder.decode_float(&[], &mut pcm[..n], false)
        };
        let Ok(got) = r else {
            break;
        };
        put(t, at, &pcm[..got]);
        s.concealed_samples += got as u64;
        at += frame;
    }
}

/// Writes PCM into a track's buffer at `pos` (overwriting; what is already mixed is cut).
fn put(t: &mut Track, pos: i64, pcm: &[f32]) {
    let skip = (t.buf_start - pos).max(0) as usize;
    if skip >= pcm.len() {
        return;
    }
    let at = (pos + skip as i64 - t.buf_start) as usize;
    if t.buf.len() < at + pcm.len() - skip {
        t.buf.resize(at + pcm.len() - skip, 0.0);
    }
    for (i, &x) in pcm[skip..].iter().enumerate() {
        t.buf[at + i] = x;
    }
}

/// Linear up to 0.75, then a tanh knee towards ±1: loud overlaps are squeezed instead of
/// wrapping or clipping hard. Continuous with slope 1 at the knee.
pub(crate) fn soft_clip(x: f32) -> f32 {
    const T: f32 = 0.75;
    let a = x.abs();
    if a <= T {
        x
    } else {
        x.signum() * (T + (1.0 - T) * ((a - T) / (1.0 - T)).tanh())
    }
}

/// An OpusHead (RFC 7845 §5.1), mapping family 0.
pub(crate) fn opus_head(channels: u8, pre_skip: u16) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(channels);
    h.extend_from_slice(&pre_skip.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, start: usize) -> Vec<f32> {
        (0..FRAME as usize)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * hz * (start + i) as f32 / 48_000.0).sin())
            .collect()
    }

    #[test]
    fn soft_clip_is_monotonic_and_bounded() {
        let mut last = -2.0;
        for i in -400..=400 {
            let y = soft_clip(i as f32 / 100.0);
            assert!(y >= last && y.abs() <= 1.0, "{i} {y}");
            last = y;
        }
        assert_eq!(soft_clip(0.5), 0.5);
    }

    #[test]
    fn two_tracks_mix_and_losses_are_concealed_once_due() {
        let mut enc = Encoder::new(48_000, Channels::Mono, Application::Audio).expect("enc");
        let mut m = Mixer::new(48_000).expect("mixer");
        let mut out = Vec::new();
        let mut buf = [0u8; 1500];
        for k in 0..50i64 {
            let n = enc
                .encode_float(&tone(440.0, (k * FRAME) as usize), &mut buf)
                .expect("e");
            let p: Arc<[u8]> = Arc::from(&buf[..n]);
            if k != 20 {
                // Track 1 loses packet 20; track 2 starts at frame 10, 100 ms late.
                let ts = 1_000u32.wrapping_add((k * FRAME) as u32);
                m.push(TrackId(1), k as u64, ts, k * FRAME, p.clone())
                    .expect("push");
            }
            if k >= 10 {
                let ts = (u32::MAX - 500).wrapping_add((k * FRAME) as u32); // wraps
                m.push(TrackId(2), k as u64, ts, k * FRAME + 4800, p)
                    .expect("push");
            }
            m.pump(Some(k * FRAME - 9600), None, &mut out);
        }
        assert_eq!(m.stats.concealed_samples, FRAME as u64);
        m.pump(None, None, &mut out);
        assert!(out.len() >= 54, "{}", out.len());
        assert_eq!(out[3].0, 3 * FRAME);
        assert!(out.windows(2).all(|w| w[1].0 == w[0].0 + FRAME));
        assert_eq!(m.stats.late_packets, 0);
    }
}
