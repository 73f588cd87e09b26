//! Property tests on untrusted input (issue 13, fuzzing on stable): codec headers of every
//! packet, RTP header rewriting, SDP screening. Each runs for a short budget in the normal test
//! run; `KETANG_FUZZ_SECS=3600 cargo test -p ketang-sfu fuzz` runs each for that long.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arbtest::arbitrary::{self, Unstructured};
use str0m::format::Codec;

use crate::forward::keyframe::inspect;
use crate::forward::rewrite::{Rewriter, SourceFields};
use crate::lesson::role::Role;
use crate::session::sdp::{PeerMode, screen_offer};

/// Milliseconds per property: 300 by default, `KETANG_FUZZ_SECS` seconds when set.
fn budget_ms() -> u64 {
    std::env::var("KETANG_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(300, |s| s * 1000)
}

#[test]
fn fuzz_keyframe_detection_never_panics() {
    let cases = std::cell::Cell::new(0u64);
    arbtest::arbtest(|u| {
        cases.set(cases.get() + 1);
        let codec = *u.choose(&[Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Opus])?;
        let payload: Vec<u8> = u.arbitrary()?;
        let info = inspect(codec, &payload);
        if payload.is_empty() && codec != Codec::Opus {
            assert!(!info.keyframe_start, "an empty payload starts nothing");
        }
        Ok(())
    })
    .budget_ms(budget_ms());
    eprintln!("{} cases in {} ms", cases.get(), budget_ms());
}

#[test]
fn fuzz_rewritten_sequence_numbers_only_grow() {
    let cases = std::cell::Cell::new(0u64);
    arbtest::arbtest(|u| {
        cases.set(cases.get() + 1);
        let mut r = Rewriter::new(90_000);
        let t0 = Instant::now();
        // Extended sequence numbers as str0m gives them: 16-bit wraps counted, far from u64::MAX.
        let mut seq = u64::from(u.arbitrary::<u32>()?);
        let mut ts: u32 = u.arbitrary()?;
        let mut ms = 0u64;
        let mut last_out: Option<u64> = None;
        for _ in 0..u.int_in_range(1..=200)? {
            seq += u64::from(u.int_in_range(1..=50u8)?);
            ts = ts.wrapping_add(u.arbitrary::<u16>()?.into());
            ms += u64::from(u.arbitrary::<u8>()?);
            let src = SourceFields {
                seq,
                ts,
                arrival: t0 + Duration::from_millis(ms),
                picture_id: u.arbitrary::<Option<u16>>()?.map(|p| p & 0x7fff),
                tl0: u.arbitrary()?,
            };
            let out = r
                .rewrite(src, u.arbitrary()?)
                .expect("a newer packet is sent");
            if let Some(p) = out.picture_id {
                assert!(p <= 0x7fff);
            }
            if let Some(prev) = last_out {
                assert!(out.seq > prev, "{} after {prev}", out.seq);
            }
            last_out = Some(out.seq);
        }
        Ok(())
    })
    .budget_ms(budget_ms());
    eprintln!("{} cases in {} ms", cases.get(), budget_ms());
}

/// An offer assembled from SDP-shaped fragments, so the screener sees m-lines, directions and
/// attributes in odd orders and not only noise.
fn sdp_like(u: &mut Unstructured) -> arbitrary::Result<String> {
    const LINES: &[&str] = &[
        "v=0",
        "o=- 1 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "m=video 0 RTP/AVP 0",
        "m=",
        "a=mid:0",
        "a=mid:1",
        "a=mid:",
        "a=sendonly",
        "a=recvonly",
        "a=sendrecv",
        "a=inactive",
        "a=inactive ",
        "a=rtpmap:111 opus/48000/2",
        "a=rtpmap:96 VP8/90000",
        "a=simulcast:send h;f",
        "a=rid:h send",
        "a=ice-ufrag:x",
        "a=ice-pwd:yyyyyyyyyyyyyyyyyyyyyy",
        "a=setup:actpass",
        "c=IN IP4 0.0.0.0",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
    ];
    let mut out = String::new();
    for _ in 0..u.int_in_range(0..=40)? {
        if u.ratio(1, 8)? {
            out.push_str(&u.arbitrary::<String>()?);
        } else {
            out.push_str(u.choose(LINES)?);
        }
        out.push_str(if u.arbitrary()? { "\r\n" } else { "\n" });
    }
    Ok(out)
}

#[test]
fn fuzz_sdp_screening_never_panics_and_answers_each_m_line() {
    let cases = std::cell::Cell::new(0u64);
    arbtest::arbtest(|u| {
        cases.set(cases.get() + 1);
        let sdp = sdp_like(u)?;
        let role = *u.choose(&[Role::Teacher, Role::Classroom, Role::Observer, Role::Viewer])?;
        let mode = *u.choose(&[PeerMode::Signaling, PeerMode::Whip, PeerMode::Whep])?;
        let screened = screen_offer(&sdp, role, mode, &HashMap::new(), &[], &|_| true);
        let m_in = sdp.lines().filter(|l| l.starts_with("m=")).count();
        let m_out = screened.sdp.lines().filter(|l| l.starts_with("m=")).count();
        assert_eq!(m_in, m_out, "m-lines are screened, never dropped or added");
        Ok(())
    })
    .budget_ms(budget_ms());
    eprintln!("{} cases in {} ms", cases.get(), budget_ms());
}
