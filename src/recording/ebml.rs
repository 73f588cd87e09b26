//! The few Matroska/WebM elements the recorder writes and reads back, as plain EBML.
//!
//! Our own writer instead of libwebm because the recorder needs three things libwebm's muxer
//! does not give through the `webm` crate: whole clusters handed to the file at moments we
//! choose (crash safety), patching a live file into a seekable one in place (no second copy of a
//! lesson-long file), and reading a torn file back to repair it.

/// Element ids, written with their marker bits as in the Matroska specification.
pub(crate) mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    pub const SEEK: u32 = 0x4DBB;
    pub const SEEK_ID: u32 = 0x53AB;
    pub const SEEK_POSITION: u32 = 0x53AC;
    pub const VOID: u32 = 0xEC;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const DATE_UTC: u32 = 0x4461;
    pub const TITLE: u32 = 0x7BA9;
    pub const DURATION: u32 = 0x4489;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const FLAG_LACING: u32 = 0x9C;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const CODEC_DELAY: u32 = 0x56AA;
    pub const SEEK_PRE_ROLL: u32 = 0x56BB;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMESTAMP: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const CUES: u32 = 0x1C53_BB6B;
    pub const CUE_POINT: u32 = 0xBB;
    pub const CUE_TIME: u32 = 0xB3;
    pub const CUE_TRACK_POSITIONS: u32 = 0xB7;
    pub const CUE_TRACK: u32 = 0xF7;
    pub const CUE_CLUSTER_POSITION: u32 = 0xF1;
}

/// The size field of a master element whose size is not known while it is being written.
pub(crate) const UNKNOWN_SIZE_8: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// An EBML byte buffer with element helpers.
#[derive(Default)]
pub(crate) struct Buf(pub Vec<u8>);

impl Buf {
    pub fn id(&mut self, id: u32) {
        let b = id.to_be_bytes();
        let skip = b.iter().take_while(|&&x| x == 0).count().min(3);
        self.0.extend_from_slice(&b[skip..]);
    }

    /// A size in its shortest vint form (all-ones is reserved for "unknown").
    pub fn size(&mut self, n: u64) {
        let mut len = 1;
        while len < 8 && n >= (1u64 << (7 * len)) - 1 {
            len += 1;
        }
        self.size_fixed(n, len);
    }

    /// A size as a vint of exactly `len` bytes (for fields patched later).
    pub fn size_fixed(&mut self, n: u64, len: usize) {
        let v = n | (1u64 << (7 * len));
        self.0.extend_from_slice(&v.to_be_bytes()[8 - len..]);
    }

    pub fn bytes(&mut self, id: u32, data: &[u8]) {
        self.id(id);
        self.size(data.len() as u64);
        self.0.extend_from_slice(data);
    }

    pub fn uint(&mut self, id: u32, v: u64) {
        let b = v.to_be_bytes();
        let skip = b.iter().take_while(|&&x| x == 0).count().min(7);
        self.bytes(id, &b[skip..]);
    }

    /// An unsigned integer always 8 bytes long, so a patched value keeps the element's size.
    pub fn uint8(&mut self, id: u32, v: u64) {
        self.bytes(id, &v.to_be_bytes());
    }

    pub fn float(&mut self, id: u32, v: f64) {
        self.bytes(id, &v.to_be_bytes());
    }

    pub fn master(&mut self, id: u32, body: impl FnOnce(&mut Buf)) {
        let mut inner = Buf::default();
        body(&mut inner);
        self.bytes(id, &inner.0);
    }

    /// A Void element taking exactly `total` bytes (at least 2).
    pub fn void(&mut self, total: usize) {
        debug_assert!(total >= 2);
        // One size byte holds up to 126; larger voids take a two-byte size.
        let (size_len, body) = if total - 2 <= 126 {
            (1, total - 2)
        } else {
            (2, total - 3)
        };
        self.id(id::VOID);
        self.size_fixed(body as u64, size_len);
        self.0.resize(self.0.len() + body, 0);
    }
}

/// One element header read back from a file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub id: u32,
    /// `None`: unknown size.
    pub size: Option<u64>,
    /// Bytes taken by the id and the size.
    pub len: usize,
}

/// Reads a vint: (value without the marker, length, all value bits set).
fn vint(b: &[u8]) -> Option<(u64, usize, bool)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || b.len() < len {
        return None;
    }
    let mut v = u64::from(first) & ((1u64 << (8 - len)) - 1);
    for &x in &b[1..len] {
        v = (v << 8) | u64::from(x);
    }
    let all_ones = v == (1u64 << (7 * len)) - 1;
    Some((v, len, all_ones))
}

/// Parses an element header at the start of `b`.
pub(crate) fn header(b: &[u8]) -> Option<Header> {
    let first = *b.first()?;
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 || b.len() < id_len {
        return None;
    }
    let id = b[..id_len]
        .iter()
        .fold(0u32, |acc, &x| (acc << 8) | u32::from(x));
    let (size, size_len, unknown) = vint(&b[id_len..])?;
    Some(Header {
        id,
        size: (!unknown).then_some(size),
        len: id_len + size_len,
    })
}

/// Iterates the child elements of a master element's body: (id, body).
pub(crate) fn children(mut b: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    std::iter::from_fn(move || {
        let h = header(b)?;
        let end = h.len.checked_add(usize::try_from(h.size?).ok()?)?;
        let body = b.get(h.len..end)?;
        b = &b[end..];
        Some((h.id, body))
    })
}

/// An unsigned integer element body.
pub(crate) fn read_uint(b: &[u8]) -> u64 {
    b.iter()
        .take(8)
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

/// A SimpleBlock body: (track number, relative timestamp, keyframe flag).
pub(crate) fn read_block(b: &[u8]) -> Option<(u64, i16, bool)> {
    let (track, n, _) = vint(b)?;
    let rest = b.get(n..n + 3)?;
    Some((
        track,
        i16::from_be_bytes([rest[0], rest[1]]),
        rest[2] & 0x80 != 0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip_and_voids_fill_exactly() {
        for n in [0u64, 1, 126, 127, 16_382, 16_383, 1 << 40] {
            let mut b = Buf::default();
            b.id(id::CLUSTER);
            b.size(n);
            let h = header(&b.0).expect("header");
            assert_eq!((h.id, h.size, h.len), (id::CLUSTER, Some(n), b.0.len()));
        }
        for total in [2usize, 12, 128, 129, 130, 400] {
            let mut b = Buf::default();
            b.void(total);
            assert_eq!(b.0.len(), total);
            let h = header(&b.0).expect("void");
            assert_eq!(h.len as u64 + h.size.unwrap_or(u64::MAX), total as u64);
        }
        let mut b = Buf::default();
        b.id(id::SEGMENT);
        b.0.extend_from_slice(&UNKNOWN_SIZE_8);
        assert_eq!(header(&b.0).map(|h| h.size), Some(None));
    }

    #[test]
    fn blocks_and_children_parse() {
        let mut b = Buf::default();
        b.master(id::CLUSTER, |c| {
            c.uint(id::TIMESTAMP, 1000);
            c.bytes(id::SIMPLE_BLOCK, &[0x82, 0xFF, 0xF6, 0x80, 1, 2]);
        });
        let h = header(&b.0).expect("cluster");
        let kids: Vec<_> = children(&b.0[h.len..]).collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(read_uint(kids[0].1), 1000);
        assert_eq!(read_block(kids[1].1), Some((2, -10, true)));
        // A torn element ends the iteration instead of reading past the buffer.
        assert_eq!(children(&b.0[h.len..b.0.len() - 1]).count(), 1);
    }
}
