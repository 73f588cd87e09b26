//! Reading back a file [`LiveWebm`](super::webm::LiveWebm) wrote, to repair it after a crash:
//! the header, then whole clusters until the first torn or foreign element (a torn cluster, or
//! the Cues of an interrupted finalize), with the cue points rebuilt by the writer's rule.

use super::ebml::{self, id};
use super::webm::{Cue, Layout, TICK_US, TrackSpec};

pub(crate) struct Scan {
    pub layout: Layout,
    pub tracks: Vec<TrackSpec>,
    /// Cue and whether it is a video keyframe cue.
    pub cues: Vec<(Cue, bool)>,
    pub good_end: u64,
    pub end_t: u64,
}

/// Walks a file written by `LiveWebm`: the header, then whole clusters until the first torn
/// or foreign element.
pub(crate) fn scan(data: &[u8]) -> Option<Scan> {
    let ebml = ebml::header(data)?;
    let seg_at = ebml.len + usize::try_from(ebml.size?).ok()?;
    let seg = ebml::header(data.get(seg_at..)?)?;
    if seg.id != id::SEGMENT {
        return None;
    }
    let segment_data = seg_at + seg.len;
    let mut layout = Layout {
        segment_size: (seg_at + 4) as u64,
        segment_data: segment_data as u64,
        seek_area: segment_data as u64,
        ..Layout::default()
    };
    let mut tracks = Vec::new();
    let mut cues = Vec::new();
    let mut video_cue_seen = false;
    let mut end_t = 0u64;
    let mut pos = segment_data;
    let mut good_end = None;
    while let Some(h) = data.get(pos..).and_then(ebml::header) {
        let Some(size) = h.size.and_then(|s| usize::try_from(s).ok()) else {
            break;
        };
        let Some(body) = data.get(pos + h.len..pos + h.len + size) else {
            break; // torn
        };
        match h.id {
            id::VOID | id::SEEK_HEAD if layout.info == 0 => {}
            id::INFO => {
                layout.info = pos as u64;
                layout.seek_area_len = pos as u64 - layout.seek_area;
                let mut at = pos + h.len;
                for (cid, cb) in ebml::children(body) {
                    if cid == id::VOID || cid == id::DURATION {
                        layout.duration = at as u64;
                    }
                    at += ebml::header(data.get(at..)?)?.len + cb.len();
                }
            }
            id::TRACKS => {
                layout.tracks = pos as u64;
                tracks = ebml::children(body).map(|(_, e)| read_track(e)).collect();
                good_end = Some(pos + h.len + size);
            }
            id::CLUSTER if layout.tracks != 0 => {
                let mut start = None;
                let mut first = true;
                for (cid, cb) in ebml::children(body) {
                    if cid == id::TIMESTAMP {
                        start = Some(ebml::read_uint(cb));
                    } else if cid == id::SIMPLE_BLOCK
                        && let (Some(t0), Some((track, rel, key))) = (start, ebml::read_block(cb))
                    {
                        let is_video = tracks
                            .get(track.saturating_sub(1) as usize)
                            .is_some_and(TrackSpec::is_video);
                        let t = t0.saturating_add_signed(i64::from(rel));
                        // The same rule as `push`: the cluster's first frame decides.
                        if first && (is_video && key || !video_cue_seen) {
                            video_cue_seen |= is_video && key;
                            let pos = (pos - segment_data) as u64;
                            let cue = Cue {
                                time_t: t,
                                track,
                                pos,
                            };
                            cues.push((cue, is_video && key));
                        }
                        first = false;
                        // Audio frames are 20 ms (the mix, and what WebRTC sends).
                        end_t = end_t.max(t.saturating_add(if is_video {
                            0
                        } else {
                            20_000 / TICK_US
                        }));
                    }
                }
                good_end = Some(pos + h.len + size);
            }
            // Cues of an interrupted finalize, or anything else: rewritten from here.
            _ => break,
        }
        pos += h.len + size;
    }
    if layout.info == 0 || layout.duration == 0 || layout.tracks == 0 {
        return None;
    }
    Some(Scan {
        layout,
        tracks,
        cues,
        good_end: good_end? as u64,
        end_t,
    })
}

fn read_track(entry: &[u8]) -> TrackSpec {
    let mut kind = 0;
    let (mut codec, mut width, mut height, mut channels) = ("V_VP8", 0u16, 0u16, 1u8);
    let (mut private, mut delay, mut preroll) = (Vec::new(), 0, 0);
    for (cid, b) in ebml::children(entry) {
        match cid {
            id::TRACK_TYPE => kind = ebml::read_uint(b),
            id::CODEC_ID if b == b"V_VP9" => codec = "V_VP9",
            id::CODEC_PRIVATE => private = b.to_vec(),
            id::CODEC_DELAY => delay = ebml::read_uint(b),
            id::SEEK_PRE_ROLL => preroll = ebml::read_uint(b),
            id::VIDEO | id::AUDIO => {
                for (k, v) in ebml::children(b) {
                    let n = ebml::read_uint(v);
                    match k {
                        id::PIXEL_WIDTH => width = n as u16,
                        id::PIXEL_HEIGHT => height = n as u16,
                        id::CHANNELS => channels = n as u8,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if kind == 1 {
        TrackSpec::Video {
            codec,
            width,
            height,
        }
    } else {
        TrackSpec::Audio {
            channels,
            private,
            codec_delay_ns: delay,
            seek_preroll_ns: preroll,
        }
    }
}
