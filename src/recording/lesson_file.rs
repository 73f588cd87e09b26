//! The lesson's file of one codec segment: WebM for VP8/VP9, fragmented MP4 for H.264.
//!
//! A lesson is one file as long as its stage video keeps one codec family. When a keyframe
//! of a codec the current file cannot hold comes (a teacher on OBS with H.264 after a
//! browser's VP8, or back), the file ends and the next segment starts at that keyframe:
//! `name.webm`, then `name.seg2.mp4`, `name.seg3.webm`, … (the library lists them in order
//! under one entry). A file with nothing on disk yet is replaced instead, so a lesson that is
//! H.264 from its start is one MP4. Each segment's times start at 0 (its `origin_us` on the
//! recording's clock), so every file plays on its own.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use ketang_sfu::VideoCodec;

use super::manifest::Manifest;
use super::mp4::LiveMp4;
use super::webm::{Finalized, LiveWebm, TrackSpec};

/// Track numbers of the mixed WebM.
pub(crate) const WEBM_VIDEO: u64 = 1;
pub(crate) const WEBM_AUDIO: u64 = 2;

/// The container a video codec is recorded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Container {
    Webm,
    Mp4,
}

impl Container {
    pub fn for_codec(codec: VideoCodec) -> Container {
        match codec {
            VideoCodec::H264 => Container::Mp4,
            _ => Container::Webm,
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            Container::Webm => "webm",
            Container::Mp4 => "mp4",
        }
    }
}

pub(crate) enum Writer {
    Webm(LiveWebm),
    Mp4(LiveMp4),
}

/// One segment's file.
pub(crate) struct LessonFile {
    pub writer: Writer,
    /// Where this segment starts on the recording's clock.
    pub origin_us: u64,
    /// The codec its video track is declared as; `None` before its first keyframe.
    pub video: Option<VideoCodec>,
}

impl LessonFile {
    pub fn path(&self) -> &Path {
        match &self.writer {
            Writer::Webm(w) => w.path(),
            Writer::Mp4(m) => m.path(),
        }
    }

    pub fn container(&self) -> Container {
        match self.writer {
            Writer::Webm(_) => Container::Webm,
            Writer::Mp4(_) => Container::Mp4,
        }
    }

    /// Whether a keyframe of `codec` can go on in this file. Declares the video track at the
    /// first keyframe; a WebM whose header is already on disk (audio came first) declared VP8.
    pub fn accept_keyframe(&mut self, codec: VideoCodec, size: Option<(u16, u16)>) -> bool {
        if Container::for_codec(codec) != self.container() {
            return false;
        }
        if let Some(declared) = self.video {
            return declared == codec;
        }
        let declared = match &mut self.writer {
            Writer::Webm(w) => {
                let (width, height) = size.unwrap_or((1280, 720));
                let spec = TrackSpec::Video {
                    codec: if codec == VideoCodec::Vp9 {
                        "V_VP9"
                    } else {
                        "V_VP8"
                    },
                    width,
                    height,
                };
                if w.set_track(0, spec) {
                    codec
                } else {
                    VideoCodec::Vp8
                }
            }
            Writer::Mp4(_) => codec,
        };
        self.video = Some(declared);
        declared == codec
    }

    /// Nothing of this file is on disk: it can be replaced by another container's.
    pub fn is_blank(&self) -> bool {
        match &self.writer {
            Writer::Webm(w) => !w.header_written(),
            Writer::Mp4(m) => !m.header_written(),
        }
    }

    pub fn push_video(&mut self, us: u64, key: bool, data: &[u8]) -> io::Result<()> {
        let us = us.saturating_sub(self.origin_us);
        match &mut self.writer {
            Writer::Webm(w) => w.push(WEBM_VIDEO, us, 0, key, data),
            Writer::Mp4(m) => m.push_video(us, key, data).map(drop),
        }
    }

    pub fn push_audio(&mut self, us: u64, dur_us: u64, packet: &[u8]) -> io::Result<()> {
        let us = us.saturating_sub(self.origin_us);
        match &mut self.writer {
            Writer::Webm(w) => w.push(WEBM_AUDIO, us, dur_us, true, packet),
            Writer::Mp4(m) => m.push_audio(us, dur_us, packet).map(drop),
        }
    }

    pub fn sync(&mut self, now: Instant, age: Duration) -> io::Result<()> {
        match &mut self.writer {
            Writer::Webm(w) => w.sync(now, age),
            Writer::Mp4(m) => m.sync(now, age),
        }
    }

    pub fn abandon_pending(&mut self) {
        match &mut self.writer {
            Writer::Webm(w) => w.abandon_cluster(),
            Writer::Mp4(m) => m.abandon_fragment(),
        }
    }

    pub fn finalize(self, target: &Path) -> io::Result<Finalized> {
        match self.writer {
            Writer::Webm(w) => w.finalize(target),
            Writer::Mp4(m) => m.finalize(target),
        }
    }
}

pub(crate) fn codec_name(c: VideoCodec) -> &'static str {
    match c {
        VideoCodec::H264 => "h264",
        VideoCodec::Vp9 => "vp9",
        _ => "vp8",
    }
}

/// Finalizes a lesson segment's file and marks its manifest finished (as `room::finish_file` does).
pub(crate) fn finish_lesson(f: LessonFile, mut m: Manifest) -> io::Result<(Finalized, Manifest)> {
    let done = f.finalize(&m.target())?;
    if m.codecs.is_empty() {
        m.codecs = vec!["opus".into()];
    }
    m.finished(done.duration_ms, done.bytes, None);
    m.store()?;
    Ok((done, m))
}
