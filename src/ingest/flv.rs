//! The FLV tag bodies RTMP carries (video: AVC; audio: AAC), and what WebRTC needs of them.
//!
//! A video tag starts with a byte of frame type and codec id, then for AVC a packet type (0:
//! the decoder configuration record with SPS and PPS, 1: NAL units with lengths, 2: end of
//! sequence) and a 24-bit composition time offset. An audio tag starts with a byte of format,
//! rate, size and channels, then for AAC a packet type (0: AudioSpecificConfig, 1: a raw frame).

use super::IngestError;

const CODEC_AVC: u8 = 7;
const FORMAT_AAC: u8 = 10;

/// The H.264 decoder configuration of a stream (`AVCDecoderConfigurationRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    pub profile: u8,
    pub compatibility: u8,
    pub level: u8,
    /// Bytes of each NAL unit's length prefix (1, 2 or 4).
    pub length_size: usize,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
}

impl AvcConfig {
    /// The SDP `profile-level-id` of the stream.
    pub fn profile_level_id(&self) -> String {
        format!(
            "{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }

    /// The `profile-level-id` to offer: the stream's profile as browsers name it, at level 3.1
    /// (levels are asymmetric in WebRTC: a receiver decodes above the level it offers).
    /// Constrained Baseline (Baseline with constraint_set1) is what WebRTC encoders send.
    ///
    /// High is announced as Main: Chromium offers no High profile-level-id for WebRTC (only
    /// 42001f, 42e01f, 4d001f), so a High stream labelled as such would reach no browser,
    /// while the decoders behind Chrome, Edge and Safari (FFmpeg, VideoToolbox, the platforms'
    /// hardware) all decode High. Firefox's OpenH264 is the exception: encoders for Firefox
    /// viewers should send Baseline or Main (README).
    pub fn sdp_profile(&self) -> u32 {
        match self.profile {
            66 if self.compatibility & 0x40 != 0 => 0x42e01f,
            66 => 0x42001f,
            _ => 0x4d001f,
        }
    }

    /// Browsers decode 8-bit 4:2:0 Baseline, Main and High; High 10, 4:2:2 and 4:4:4 profiles
    /// would give every viewer a black tile.
    pub fn check_decodable(&self) -> Result<(), IngestError> {
        match self.profile {
            66 | 77 | 100 => Ok(()),
            p => Err(IngestError::UnsupportedProfile(p)),
        }
    }

    /// SPS and PPS in Annex B form, to put before each keyframe (a viewer may start there).
    pub fn annex_b_parameter_sets(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for nal in self.sps.iter().chain(&self.pps) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    Config(AvcConfig),
    /// One access unit, still length-prefixed.
    Frame {
        keyframe: bool,
        /// Composition time offset (ms): non-zero only with B-frames.
        composition_ms: i32,
        data: Vec<u8>,
    },
    EndOfSequence,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag {
    /// The AudioSpecificConfig (ISO 14496-3).
    Config(Vec<u8>),
    Frame(Vec<u8>),
}

pub fn video_tag(body: &[u8]) -> Result<VideoTag, IngestError> {
    let [head, packet_type, c0, c1, c2, rest @ ..] = body else {
        return Err(IngestError::Malformed("video tag too short"));
    };
    if head & 0x0f != CODEC_AVC {
        return Err(IngestError::UnsupportedVideo(head & 0x0f));
    }
    let keyframe = head >> 4 == 1;
    // A signed 24-bit value.
    let composition_ms = (i32::from_be_bytes([*c0, *c1, *c2, 0])) >> 8;
    match packet_type {
        0 => Ok(VideoTag::Config(avc_config(rest)?)),
        1 => Ok(VideoTag::Frame {
            keyframe,
            composition_ms,
            data: rest.to_vec(),
        }),
        2 => Ok(VideoTag::EndOfSequence),
        _ => Err(IngestError::Malformed("unknown AVC packet type")),
    }
}

pub fn audio_tag(body: &[u8]) -> Result<AudioTag, IngestError> {
    let [head, packet_type, rest @ ..] = body else {
        return Err(IngestError::Malformed("audio tag too short"));
    };
    if head >> 4 != FORMAT_AAC {
        return Err(IngestError::UnsupportedAudio(head >> 4));
    }
    match packet_type {
        0 => Ok(AudioTag::Config(rest.to_vec())),
        _ => Ok(AudioTag::Frame(rest.to_vec())),
    }
}

fn avc_config(b: &[u8]) -> Result<AvcConfig, IngestError> {
    let bad = IngestError::Malformed("AVC decoder configuration record");
    let [
        version,
        profile,
        compatibility,
        level,
        len_byte,
        sps_count,
        rest @ ..,
    ] = b
    else {
        return Err(bad);
    };
    if *version != 1 {
        return Err(bad);
    }
    let mut at = rest;
    let sps = parameter_sets(&mut at, usize::from(sps_count & 0x1f))?;
    let [pps_count, tail @ ..] = at else {
        return Err(IngestError::Malformed("AVC PPS count"));
    };
    at = tail;
    let pps = parameter_sets(&mut at, usize::from(*pps_count))?;
    if sps.is_empty() || pps.is_empty() {
        return Err(IngestError::Malformed(
            "AVC configuration without SPS or PPS",
        ));
    }
    Ok(AvcConfig {
        profile: *profile,
        compatibility: *compatibility,
        level: *level,
        length_size: usize::from(len_byte & 0x03) + 1,
        sps,
        pps,
    })
}

/// `n` parameter sets, each with a 16-bit length, from the front of `at`.
fn parameter_sets(at: &mut &[u8], n: usize) -> Result<Vec<Vec<u8>>, IngestError> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let [h, l, tail @ ..] = *at else {
            return Err(IngestError::Malformed("AVC parameter set length"));
        };
        let len = usize::from(u16::from_be_bytes([*h, *l]));
        let nal = tail
            .get(..len)
            .ok_or(IngestError::Malformed("AVC parameter set"))?;
        out.push(nal.to_vec());
        *at = &tail[len..];
    }
    Ok(out)
}

/// A length-prefixed access unit in Annex B form (start codes), as str0m's packetizer takes
/// it; a keyframe gets the parameter sets first. A truncated tail is dropped.
pub fn annex_b(data: &[u8], config: &AvcConfig, keyframe: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    if keyframe {
        out.extend(config.annex_b_parameter_sets());
    }
    let n = config.length_size;
    let mut at = data;
    while at.len() >= n {
        let len = at[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let Some(nal) = at.get(n..n + len) else {
            break;
        };
        // Parameter sets in the stream itself are already there; keep them anyway (harmless).
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
        at = &at[n + len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_record() -> Vec<u8> {
        let sps = [0x67, 0x64, 0x00, 0x1e, 0xac];
        let pps = [0x68, 0xee, 0x3c, 0x80];
        let mut b = vec![1, 0x64, 0x00, 0x1e, 0xff, 0xe1];
        b.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        b.extend_from_slice(&sps);
        b.push(1);
        b.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        b.extend_from_slice(&pps);
        b
    }

    #[test]
    fn reads_the_avc_configuration_and_turns_frames_into_annex_b() {
        let mut tag = vec![0x17, 0, 0, 0, 0];
        tag.extend(config_record());
        let VideoTag::Config(c) = video_tag(&tag).unwrap() else {
            panic!("not a config");
        };
        assert_eq!(c.profile_level_id(), "64001e");
        assert_eq!(c.length_size, 4);
        assert_eq!(c.sps, vec![vec![0x67, 0x64, 0x00, 0x1e, 0xac]]);
        c.check_decodable().unwrap();
        assert_eq!(c.sdp_profile(), 0x4d001f);
        let cb = AvcConfig {
            profile: 66,
            compatibility: 0xc0,
            ..c.clone()
        };
        assert_eq!(cb.sdp_profile(), 0x42e01f);

        let mut frame = vec![0x17, 1, 0, 0, 0];
        frame.extend_from_slice(&[0, 0, 0, 3, 0x65, 0xaa, 0xbb, 0, 0, 0, 2, 0x06, 0x01]);
        let VideoTag::Frame {
            keyframe,
            composition_ms,
            data,
        } = video_tag(&frame).unwrap()
        else {
            panic!("not a frame");
        };
        assert!(keyframe);
        assert_eq!(composition_ms, 0);
        let au = annex_b(&data, &c, true);
        let mut want = c.annex_b_parameter_sets();
        want.extend_from_slice(&[0, 0, 0, 1, 0x65, 0xaa, 0xbb, 0, 0, 0, 1, 0x06, 0x01]);
        assert_eq!(au, want);
        // A delta frame gets no parameter sets; a truncated NAL unit is dropped.
        let au = annex_b(&[0, 0, 0, 2, 0x41, 0x9a, 0, 0, 0, 9, 0x41], &c, false);
        assert_eq!(au, [0, 0, 0, 1, 0x41, 0x9a]);
    }

    #[test]
    fn composition_offsets_are_signed_and_other_codecs_are_named() {
        let tag = [0x27, 1, 0xff, 0xff, 0xdf, 0, 0, 0, 1, 0x41];
        let VideoTag::Frame { composition_ms, .. } = video_tag(&tag).unwrap() else {
            panic!("not a frame");
        };
        assert_eq!(composition_ms, -33);
        // HEVC in the legacy FLV codec id 12 (what some encoders send).
        assert!(matches!(
            video_tag(&[0x1c, 1, 0, 0, 0]),
            Err(IngestError::UnsupportedVideo(12))
        ));
        assert!(matches!(
            audio_tag(&[0x2f, 0]),
            Err(IngestError::UnsupportedAudio(2))
        ));
        assert_eq!(
            audio_tag(&[0xaf, 0, 0x12, 0x10]).unwrap(),
            AudioTag::Config(vec![0x12, 0x10])
        );
        assert!(video_tag(&[0x17]).is_err());
        let mut high10 = vec![0x17, 0, 0, 0, 0];
        high10.extend(config_record());
        high10[6] = 110;
        let VideoTag::Config(c) = video_tag(&high10).unwrap() else {
            panic!("not a config");
        };
        assert!(matches!(
            c.check_decodable(),
            Err(IngestError::UnsupportedProfile(110))
        ));
    }
}
