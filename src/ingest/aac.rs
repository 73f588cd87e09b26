//! AAC in, Opus out: what an RTMP encoder sends, made audible to browsers (WebRTC has no AAC).
//!
//! Each AAC-LC frame (1024 samples at the stream's rate) is decoded with symphonia, mixed down to
//! mono (a classroom's microphone), resampled to 48 kHz and cut into 20 ms Opus frames. The
//! output timeline counts 48 kHz samples from the first frame, so packets stay evenly spaced
//! whatever the input rate.

use opus::{Application, Bitrate, Channels, Encoder};
use symphonia::core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::packet::PacketRef;
use symphonia::core::units::{Duration, Timestamp};
use symphonia::default::codecs::AacDecoder;

use super::IngestError;

const RATE: u32 = 48_000;
/// 20 ms at 48 kHz: one Opus frame.
const FRAME: usize = 960;

pub struct AacToOpus {
    decoder: AacDecoder,
    resampler: Resampler,
    /// Mono 48 kHz samples not yet encoded.
    pending: Vec<f32>,
    encoder: Encoder,
    /// 48 kHz samples encoded so far: the next packet's RTP time.
    encoded: u64,
    decoded: Vec<f32>,
    packet: Vec<u8>,
}

impl AacToOpus {
    /// A transcoder for the stream an `AudioSpecificConfig` describes (AAC-LC, mono or stereo).
    pub fn new(asc: &[u8], bitrate: u32) -> Result<Self, IngestError> {
        let mut params = AudioCodecParameters::new();
        params.for_codec(CODEC_ID_AAC).with_extra_data(asc.into());
        let decoder = AacDecoder::try_new(&params, &AudioDecoderOptions::default())
            .map_err(|e| IngestError::UnsupportedAacConfig(e.to_string()))?;
        let rate = decoder
            .codec_params()
            .sample_rate
            .ok_or_else(|| IngestError::UnsupportedAacConfig("no sample rate".into()))?;
        let mut encoder = Encoder::new(RATE, Channels::Mono, Application::Audio)
            .map_err(|e| IngestError::Opus(e.to_string()))?;
        encoder
            .set_bitrate(Bitrate::Bits(bitrate.clamp(6_000, 510_000) as i32))
            .map_err(|e| IngestError::Opus(e.to_string()))?;
        Ok(AacToOpus {
            decoder,
            resampler: Resampler::new(rate, RATE),
            pending: Vec::with_capacity(4 * FRAME),
            encoder,
            encoded: 0,
            decoded: Vec::new(),
            packet: vec![0; 1500],
        })
    }

    /// Decodes one raw AAC frame; returns the Opus packets it completes, each with its RTP time
    /// (48 kHz samples from the first).
    pub fn push(&mut self, frame: &[u8]) -> Result<Vec<(u64, Vec<u8>)>, IngestError> {
        let packet = PacketRef::new(0, Timestamp::new(0), Duration::new(1024), frame);
        let buf = self
            .decoder
            .decode_ref(&packet)
            .map_err(|e| IngestError::AacDecode(e.to_string()))?;
        let channels = buf.spec().channels().count().max(1);
        self.decoded.clear();
        buf.copy_to_vec_interleaved(&mut self.decoded);
        let mono = self
            .decoded
            .chunks(channels)
            .map(|c| c.iter().sum::<f32>() / channels as f32);
        self.resampler.run(mono, &mut self.pending);
        let mut out = Vec::new();
        while self.pending.len() >= FRAME {
            let n = self
                .encoder
                .encode_float(&self.pending[..FRAME], &mut self.packet)
                .map_err(|e| IngestError::Opus(e.to_string()))?;
            out.push((self.encoded, self.packet[..n].to_vec()));
            self.encoded += FRAME as u64;
            self.pending.drain(..FRAME);
        }
        Ok(out)
    }
}

/// Linear-interpolating sample-rate converter (44.1 → 48 kHz and friends), continuous across
/// calls. Speech and classroom sound survive it well; it is not a mastering resampler.
struct Resampler {
    step: f64,
    /// Position of the next output sample, in input samples after `prev`.
    pos: f64,
    prev: f32,
}

impl Resampler {
    fn new(from: u32, to: u32) -> Self {
        Resampler {
            step: f64::from(from) / f64::from(to.max(1)),
            pos: 0.0,
            prev: 0.0,
        }
    }

    fn run(&mut self, input: impl Iterator<Item = f32>, out: &mut Vec<f32>) {
        for cur in input {
            // Output samples between `prev` (at 0) and `cur` (at 1).
            while self.pos < 1.0 {
                let t = self.pos as f32;
                out.push(self.prev + (cur - self.prev) * t);
                self.pos += self.step;
            }
            self.pos -= 1.0;
            self.prev = cur;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resampler_keeps_the_rate_ratio_and_a_tone_its_pitch() {
        let mut r = Resampler::new(44_100, 48_000);
        let mut out = Vec::new();
        let tone = |i: usize| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 44_100.0).sin();
        for chunk in 0..10 {
            r.run((chunk * 4410..(chunk + 1) * 4410).map(tone), &mut out);
        }
        // One second in, 48 000 out (± one sample of phase).
        assert!((out.len() as i64 - 48_000).abs() <= 1, "{}", out.len());
        // Zero crossings of a 440 Hz tone: 880 a second.
        let crossings = out
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!((crossings as i64 - 880).abs() <= 2, "{crossings}");
        // 48 kHz in: passed through.
        let mut same = Resampler::new(48_000, 48_000);
        let mut out = Vec::new();
        same.run([0.1, 0.2, 0.3].into_iter(), &mut out);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn a_bad_config_is_an_error_not_a_panic() {
        assert!(AacToOpus::new(&[], 32_000).is_err());
        assert!(AacToOpus::new(&[0xff, 0xff, 0xff], 32_000).is_err());
        // AAC-LC, 44.1 kHz, stereo: accepted; garbage frames are errors.
        let mut t = AacToOpus::new(&[0x12, 0x10], 32_000).unwrap();
        for junk in [&[][..], &[0xff; 7][..], &[0x21, 0x00, 0x49][..]] {
            let _ = t.push(junk);
        }
    }

    /// ADTS frames (as ffmpeg writes them) → (AudioSpecificConfig, raw frames).
    fn adts(data: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let (mut asc, mut frames, mut at) = (Vec::new(), Vec::new(), 0);
        while at + 7 <= data.len() {
            let h = &data[at..at + 7];
            assert_eq!((h[0], h[1] & 0xf0), (0xff, 0xf0), "ADTS sync at {at}");
            let header = if h[1] & 1 == 1 { 7 } else { 9 };
            let len =
                (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
            let aot = (h[2] >> 6) + 1;
            let sfi = (h[2] >> 2) & 0x0f;
            let ch = ((h[2] & 1) << 2) | (h[3] >> 6);
            asc = vec![(aot << 3) | (sfi >> 1), ((sfi & 1) << 7) | (ch << 3)];
            frames.push(data[at + header..at + len].to_vec());
            at += len;
        }
        (asc, frames)
    }

    #[test]
    fn a_44_1_khz_stereo_aac_tone_comes_out_as_a_48_khz_opus_tone() {
        // What a recording host sends: AAC-LC, 44.1 kHz, stereo, a 440 Hz tone.
        let out = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi"])
            .args(["-i", "sine=frequency=440:sample_rate=44100:duration=2"])
            .args(["-ac", "2", "-c:a", "aac", "-b:a", "128k", "-f", "adts", "-"])
            .output()
            .expect("ffmpeg (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (asc, frames) = adts(&out.stdout);
        assert!(frames.len() > 80, "{} AAC frames", frames.len());
        let mut t = AacToOpus::new(&asc, 64_000).unwrap();
        let mut packets = Vec::new();
        for f in &frames {
            packets.extend(t.push(f).unwrap());
        }
        // 2 s of sound: 100 Opus packets (less what is still buffered), evenly spaced.
        assert!(packets.len() >= 95, "{} packets", packets.len());
        for (i, (ts, _)) in packets.iter().enumerate() {
            assert_eq!(*ts, i as u64 * FRAME as u64);
        }
        let mut decoder = opus::Decoder::new(48_000, Channels::Mono).unwrap();
        let mut pcm = Vec::new();
        let mut buf = vec![0f32; 5760];
        for (_, p) in &packets {
            let n = decoder.decode_float(p, &mut buf, false).unwrap();
            pcm.extend_from_slice(&buf[..n]);
        }
        // One second from 0.5 s on: 880 zero crossings of a 440 Hz tone, and loud enough.
        let second = &pcm[24_000..72_000];
        let crossings = second
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        let rms = (second.iter().map(|x| x * x).sum::<f32>() / second.len() as f32).sqrt();
        assert!((crossings as i64 - 880).abs() <= 8, "{crossings} crossings");
        assert!(rms > 0.05, "rms {rms}");
    }
}
