//! Property tests of the WebM writer's inputs (issue 13, fuzzing on stable): the frames the
//! network hands it (any bytes, any track, times that jump or go back) and the files a crash
//! leaves for `reopen` (torn, cut, overwritten). A short budget each in the normal test run;
//! `KETANG_FUZZ_SECS=N cargo test -p ketang --lib fuzz` runs each for N seconds.

use std::path::Path;
use std::time::{Duration, Instant};

use arbtest::arbitrary::{self, Unstructured};

use super::ebml::{self, id};
use super::repair::scan;
use super::webm::{LiveWebm, TrackSpec};

fn budget_ms() -> u64 {
    std::env::var("KETANG_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(300, |s| s * 1000)
}

fn track_spec(u: &mut Unstructured) -> arbitrary::Result<TrackSpec> {
    Ok(if u.arbitrary()? {
        TrackSpec::Video {
            codec: u.choose(&["V_VP8", "V_VP9"])?,
            width: u.arbitrary()?,
            height: u.arbitrary()?,
        }
    } else {
        let n = u.int_in_range(0..=64)?;
        TrackSpec::Audio {
            channels: u.arbitrary()?,
            private: u.bytes(n)?.to_vec(),
            codec_delay_ns: u.arbitrary()?,
            seek_preroll_ns: u.arbitrary()?,
        }
    })
}

/// Counts the SimpleBlocks in the clusters of a finished file and checks that the Segment's
/// size ends where the file ends.
fn blocks_of_finished(bytes: &[u8]) -> usize {
    let e = ebml::header(bytes).expect("EBML header");
    let seg_at = e.len + e.size.expect("EBML header size") as usize;
    let seg = ebml::header(&bytes[seg_at..]).expect("Segment");
    let size = seg.size.expect("a finished Segment has a known size") as usize;
    assert_eq!(seg_at + seg.len + size, bytes.len(), "Segment size");
    ebml::children(&bytes[seg_at + seg.len..])
        .filter(|c| c.0 == id::CLUSTER)
        .map(|c| {
            ebml::children(c.1)
                .filter(|b| b.0 == id::SIMPLE_BLOCK)
                .count()
        })
        .sum()
}

/// Frames of any size and content, on any of the file's tracks, at times that mostly advance
/// but jump far ahead or back, with syncs and cluster closes in between: the writer never
/// panics, and the finished file holds every frame in whole clusters, readable by `scan`.
fn write_random(dir: &Path, case: u64, u: &mut Unstructured) -> arbitrary::Result<()> {
    let n_tracks = u.int_in_range(1..=3)?;
    let tracks = (0..n_tracks)
        .map(|_| track_spec(u))
        .collect::<arbitrary::Result<Vec<_>>>()?;
    let part = dir.join(format!("{case}.webm.part"));
    let done = dir.join(format!("{case}.webm"));
    let cluster_ms: u64 = u.arbitrary()?;
    let mut w = LiveWebm::create(&part, tracks, "fuzz", cluster_ms).expect("create");
    let mut t: u64 = u.int_in_range(0..=1 << 36)?;
    let mut pushed = 0usize;
    for _ in 0..u.int_in_range(0..=120)? {
        match u.int_in_range(0..=19)? {
            0 => w.close_cluster().expect("close"),
            1 => w.sync(Instant::now(), Duration::ZERO).expect("sync"),
            _ => {
                t = match u.int_in_range(0..=9)? {
                    0 => t.saturating_sub(u.int_in_range(0..=10_000_000)?),
                    1 => t + u.int_in_range(0..=1 << 32)?,
                    _ => t + u.int_in_range(0..=100_000)?,
                };
                let track = u.int_in_range(1..=n_tracks as u64)?;
                let len = u.int_in_range(0..=1500)?;
                let data = u.bytes(len)?;
                let dur = u.int_in_range(0..=1_000_000)?;
                w.push(track, t, dur, u.arbitrary()?, data).expect("push");
                pushed += 1;
            }
        }
    }
    let f = w.finalize(&done).expect("finalize");
    let bytes = std::fs::read(&done).expect("read");
    assert_eq!(f.bytes, bytes.len() as u64);
    assert_eq!(
        blocks_of_finished(&bytes),
        pushed,
        "every frame is in the file"
    );
    assert!(scan(&bytes).is_some(), "the finished file scans");
    let _ = std::fs::remove_file(&done);
    Ok(())
}

#[test]
fn fuzz_the_webm_writer_keeps_every_frame_in_a_valid_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = std::cell::Cell::new(0u64);
    arbtest::arbtest(|u| {
        cases.set(cases.get() + 1);
        write_random(dir.path(), cases.get(), u)
    })
    .budget_ms(budget_ms());
    println!("webm writer: {} cases", cases.get());
}

/// A small live file as a crash leaves it: header and a few clusters, not finalized.
fn live_file(path: &Path) -> Vec<u8> {
    let tracks = vec![
        TrackSpec::Video {
            codec: "V_VP8",
            width: 64,
            height: 48,
        },
        TrackSpec::Audio {
            channels: 1,
            private: b"OpusHead\x01\x01\x38\x01\x80\xbb\0\0\0\0\0".to_vec(),
            codec_delay_ns: 6_500_000,
            seek_preroll_ns: 80_000_000,
        },
    ];
    let mut w = LiveWebm::create(path, tracks, "crash", 500).expect("create");
    for i in 0..60u64 {
        if i % 15 == 0 {
            w.push(1, i * 20_000, 0, true, &[0x10, 2, 3, 4])
                .expect("push");
        }
        w.push(2, i * 20_000, 20_000, true, &[0xf8, 1, 2])
            .expect("push");
    }
    w.sync(Instant::now(), Duration::ZERO).expect("sync");
    drop(w);
    std::fs::read(path).expect("read")
}

/// What `reopen` may find after a crash or a bad disk: the live file cut anywhere, bytes
/// overwritten or inserted. It never panics; what it accepts finalizes into a file whose
/// Segment ends where the file does (or fails with an error, never a panic).
#[test]
fn fuzz_reopening_a_damaged_file_never_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = live_file(&dir.path().join("good.webm.part"));
    let cases = std::cell::Cell::new(0u64);
    arbtest::arbtest(|u| {
        cases.set(cases.get() + 1);
        let mut data = good.clone();
        for _ in 0..u.int_in_range(1..=4)? {
            match u.int_in_range(0..=2)? {
                0 => data.truncate(u.int_in_range(0..=data.len())?),
                1 if !data.is_empty() => {
                    let at = u.int_in_range(0..=data.len() - 1)?;
                    data[at] = u.arbitrary()?;
                }
                _ => {
                    let at = u.int_in_range(0..=data.len())?;
                    let len = u.int_in_range(0..=16)?;
                    let bytes = u.bytes(len)?.to_vec();
                    data.splice(at..at, bytes);
                }
            }
        }
        let part = dir.path().join(format!("{}.webm.part", cases.get()));
        let done = dir.path().join(format!("{}.webm", cases.get()));
        std::fs::write(&part, &data).expect("write");
        if let Ok(Some((w, _cut))) = LiveWebm::reopen(&part)
            && w.finalize(&done).is_ok()
        {
            let bytes = std::fs::read(&done).expect("read");
            blocks_of_finished(&bytes);
        }
        let _ = std::fs::remove_file(&part);
        let _ = std::fs::remove_file(&done);
        Ok(())
    })
    .budget_ms(budget_ms());
    println!("webm reopen: {} cases", cases.get());
}
