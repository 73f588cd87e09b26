//! H.264 for the recorder: RTP payloads (RFC 6184) → access units in the length-prefixed
//! (AVCC) form MP4 stores, and the picture size from a sequence parameter set.
//!
//! Only what WebRTC senders use is accepted: single NAL units, STAP-A aggregates and FU-A
//! fragments (packetization-mode 0 and 1). Anything else (STAP-B, MTAPs, FU-B: interleaved
//! mode, which WebRTC never negotiates) makes the frame incomplete, as a lost packet would.

/// NAL unit types (ITU-T H.264 Table 7-1) and RFC 6184 payload types.
pub(crate) const NAL_IDR: u8 = 5;
pub(crate) const NAL_SPS: u8 = 7;
pub(crate) const NAL_PPS: u8 = 8;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// What a payload added to an access unit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Added {
    pub idr: bool,
}

/// Appends the NAL units of one RTP payload to `au` (each prefixed with its 4-byte length).
/// `fu` is the open FU-A fragment's length field offset in `au`, carried between packets.
/// `None` if the payload cannot be used (the frame is then incomplete).
pub(crate) fn append_payload(
    au: &mut Vec<u8>,
    payload: &[u8],
    fu: &mut Option<usize>,
) -> Option<Added> {
    let header = *payload.first()?;
    let kind = header & 0x1f;
    let mut added = Added::default();
    match kind {
        1..=23 => {
            if fu.is_some() {
                return None; // an FU-A that never ended
            }
            push_nal(au, payload);
            added.idr = kind == NAL_IDR;
        }
        STAP_A => {
            if fu.is_some() {
                return None;
            }
            let mut rest = payload.get(1..)?;
            while !rest.is_empty() {
                let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
                let nal = rest.get(2..2 + len)?;
                if nal.is_empty() {
                    return None;
                }
                push_nal(au, nal);
                added.idr |= nal[0] & 0x1f == NAL_IDR;
                rest = &rest[2 + len..];
            }
        }
        FU_A => {
            let fu_header = *payload.get(1)?;
            let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
            let body = &payload[2..];
            let nal_type = fu_header & 0x1f;
            match (start, *fu) {
                (true, None) => {
                    *fu = Some(au.len());
                    au.extend_from_slice(&[0; 4]);
                    au.push((header & 0xe0) | nal_type);
                }
                (false, Some(_)) => {}
                _ => return None, // a start inside a start, or a middle without one
            }
            au.extend_from_slice(body);
            added.idr = nal_type == NAL_IDR;
            if end && let Some(at) = fu.take() {
                let len = (au.len() - at - 4) as u32;
                au[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
        }
        _ => return None,
    }
    Some(added)
}

fn push_nal(au: &mut Vec<u8>, nal: &[u8]) {
    au.extend_from_slice(&(nal.len() as u32).to_be_bytes());
    au.extend_from_slice(nal);
}

/// The NAL units of a length-prefixed access unit (a truncated tail is ignored).
pub(crate) fn nal_units(mut au: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let len = u32::from_be_bytes(au.get(..4)?.try_into().ok()?) as usize;
        let nal = au.get(4..4 + len)?;
        au = &au[4 + len..];
        Some(nal)
    })
}

/// The first SPS and PPS of an access unit.
pub(crate) fn parameter_sets(au: &[u8]) -> Option<(&[u8], &[u8])> {
    let find = |t: u8| nal_units(au).find(|n| n.first().is_some_and(|h| h & 0x1f == t));
    Some((find(NAL_SPS)?, find(NAL_PPS)?))
}

/// Reads Exp-Golomb coded fields from an RBSP (emulation prevention bytes removed).
struct Bits {
    data: Vec<u8>,
    pos: usize,
}

impl Bits {
    fn new(nal_body: &[u8]) -> Self {
        let mut data = Vec::with_capacity(nal_body.len());
        let mut zeros = 0;
        for &b in nal_body {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            data.push(b);
        }
        Bits { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0, |acc, _| Some((acc << 1) | self.bit()?))
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i32> {
        let v = self.ue()?;
        Some(if v % 2 == 1 {
            v.div_ceil(2) as i32
        } else {
            -((v / 2) as i32)
        })
    }
}

/// Picture size (after cropping) from an SPS NAL unit (H.264 §7.3.2.1.1).
pub(crate) fn sps_size(sps: &[u8]) -> Option<(u16, u16)> {
    let mut r = Bits::new(sps.get(1..)?);
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format = r.ue()?;
        if chroma_format == 3 {
            r.bit()?; // separate_colour_plane
        }
        r.ue()?; // bit depth luma
        r.ue()?; // bit depth chroma
        r.bit()?; // transform bypass
        if r.bit()? == 1 {
            // Scaling matrices.
            for i in 0..if chroma_format == 3 { 12 } else { 8 } {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256) % 256;
                        }
                        last = if next == 0 { last } else { next };
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            for _ in 0..r.ue()? {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps allowed
    let width_mbs = r.ue()? + 1;
    let height_units = r.ue()? + 1;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?;
    }
    r.bit()?; // direct_8x8_inference
    let mut width = width_mbs * 16;
    let mut height = height_units * 16 * (2 - frame_mbs_only);
    if r.bit()? == 1 {
        let (l, rt, t, b) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (cx, cy) = match chroma_format {
            0 | 3 => (1, 2 - frame_mbs_only),
            2 => (2, 2 - frame_mbs_only),
            _ => (2, 2 * (2 - frame_mbs_only)),
        };
        width = width.checked_sub((l + rt) * cx)?;
        height = height.checked_sub((t + b) * cy)?;
    }
    Some((u16::try_from(width).ok()?, u16::try_from(height).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x264's SPS for 640×360 constrained baseline, level 3.1 (360 = 23 macroblock rows
    /// cropped by 8; VUI with emulation prevention bytes).
    const SPS_640X360: [u8; 25] = [
        0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00,
        0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x8f, 0x18, 0x32, 0x48,
    ];

    #[test]
    fn sps_gives_the_cropped_size() {
        assert_eq!(sps_size(&SPS_640X360), Some((640, 360)));
        assert_eq!(sps_size(&[0x67]), None);
    }

    #[test]
    fn payloads_become_length_prefixed_nal_units() {
        let mut au = Vec::new();
        let mut fu = None;
        let stap = [24, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 3];
        assert_eq!(
            append_payload(&mut au, &stap, &mut fu),
            Some(Added { idr: false })
        );
        // An IDR in three FU-A fragments: indicator (NRI 3, type 28), header S/E + type 5.
        let parts: [&[u8]; 3] = [
            &[0x7c, 0x85, 0xaa],
            &[0x7c, 0x05, 0xbb],
            &[0x7c, 0x45, 0xcc],
        ];
        for p in parts {
            assert_eq!(
                append_payload(&mut au, p, &mut fu),
                Some(Added { idr: true })
            );
        }
        assert_eq!(fu, None);
        let nals: Vec<&[u8]> = nal_units(&au).collect();
        assert_eq!(
            nals,
            [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 0xaa, 0xbb, 0xcc]]
        );
        assert_eq!(
            parameter_sets(&au),
            Some((&[0x67, 1, 2][..], &[0x68, 3][..]))
        );
        // A middle fragment without its start, and an unknown type, are refused.
        assert_eq!(
            append_payload(&mut Vec::new(), &[0x7c, 0x05, 1], &mut None),
            None
        );
        assert_eq!(append_payload(&mut Vec::new(), &[25, 0], &mut None), None);
        assert_eq!(
            append_payload(&mut Vec::new(), &[24, 0, 9, 1], &mut None),
            None
        );
    }
}
