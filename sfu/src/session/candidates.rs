//! Candidates in every bundled m-line of the SDP the server sends.
//!
//! str0m writes its local candidates only into the first m-line of the BUNDLE group (RFC 8843
//! allows that) and no `a=end-of-candidates`. Some clients do not look further: aiortc with
//! `max-bundle` takes the candidates of the m-line it uses for the transport and, finding none,
//! never starts connectivity checks. The server is ICE-lite and knows all its candidates when
//! it answers, so every live m-line gets the full list and `a=end-of-candidates` (RFC 8840
//! §4.2): every client then has what it needs wherever it looks.

/// Copies every `a=candidate` line of `sdp` into each m-line whose port is not 0 (an m-line
/// with port 0 is refused or stopped and gets no transport), each followed by one
/// `a=end-of-candidates`. An SDP with no candidates is returned unchanged.
pub(crate) fn complete_candidates(sdp: &str) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut candidates: Vec<&str> = Vec::new();
    for line in sdp.lines() {
        if line.starts_with("a=candidate:") && !candidates.contains(&line) {
            candidates.push(line);
        }
    }
    if candidates.is_empty() {
        return sdp.to_string();
    }

    // Session lines, then one list of lines per m-section.
    let mut session: Vec<&str> = Vec::new();
    let mut sections: Vec<Vec<&str>> = Vec::new();
    for line in sdp.lines() {
        if line.starts_with("m=") {
            sections.push(vec![line]);
        } else if let Some(sec) = sections.last_mut() {
            sec.push(line);
        } else {
            session.push(line);
        }
    }

    let mut out = String::with_capacity(sdp.len() + sections.len() * 160);
    let mut push = |l: &str| {
        out.push_str(l);
        out.push_str(eol);
    };
    for l in &session {
        push(l);
    }
    for sec in &sections {
        let live = sec[0].split_whitespace().nth(1) != Some("0");
        if !live {
            sec.iter().for_each(|l| push(l));
            continue;
        }
        // The list goes where str0m put it (before the ICE credentials), or after the
        // connection line in an m-line that had none.
        let at = sec
            .iter()
            .position(|l| l.starts_with("a=candidate:"))
            .or_else(|| sec.iter().position(|l| l.starts_with("c=")).map(|i| i + 1))
            .unwrap_or(1);
        let mut written = false;
        for (i, l) in sec.iter().enumerate() {
            if i == at && !written {
                candidates.iter().for_each(|c| push(c));
                push("a=end-of-candidates");
                written = true;
            }
            if l.starts_with("a=candidate:") || *l == "a=end-of-candidates" {
                continue;
            }
            push(l);
        }
        if !written {
            candidates.iter().for_each(|c| push(c));
            push("a=end-of-candidates");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAND_UDP: &str = "a=candidate:1 1 udp 2130706175 10.0.0.1 5000 typ host";
    const CAND_TCP: &str = "a=candidate:2 1 tcp 1518280447 10.0.0.1 5000 typ host tcptype passive";

    fn answer() -> String {
        [
            "v=0",
            "o=str0m-0.25 1 2 IN IP4 0.0.0.0",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0 1 2",
            "a=ice-lite",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "c=IN IP4 0.0.0.0",
            CAND_UDP,
            CAND_TCP,
            "a=ice-ufrag:u",
            "a=mid:0",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "c=IN IP4 0.0.0.0",
            "a=ice-ufrag:u",
            "a=mid:1",
            "m=video 0 UDP/TLS/RTP/SAVPF 96",
            "c=IN IP4 0.0.0.0",
            "a=mid:2",
            "",
        ]
        .join("\r\n")
    }

    fn section<'a>(sdp: &'a str, mid: &str) -> Vec<&'a str> {
        let start = sdp.find(&format!("a=mid:{mid}\r\n")).unwrap();
        let begin = sdp[..start].rfind("m=").unwrap();
        let end = sdp[begin + 2..]
            .find("\r\nm=")
            .map(|e| begin + 2 + e)
            .unwrap_or(sdp.len());
        sdp[begin..end].lines().collect()
    }

    #[test]
    fn every_live_m_line_carries_all_candidates_and_the_end_marker() {
        let out = complete_candidates(&answer());
        for mid in ["0", "1"] {
            let sec = section(&out, mid);
            assert!(sec.contains(&CAND_UDP), "mid {mid}: {sec:?}");
            assert!(sec.contains(&CAND_TCP), "mid {mid}: {sec:?}");
            let end = sec.iter().filter(|l| **l == "a=end-of-candidates").count();
            assert_eq!(end, 1, "mid {mid}: {sec:?}");
            // The list follows the connection line and precedes the credentials.
            let c = sec.iter().position(|l| l.starts_with("c=")).unwrap();
            let ufrag = sec
                .iter()
                .position(|l| l.starts_with("a=ice-ufrag"))
                .unwrap();
            let first = sec.iter().position(|l| *l == CAND_UDP).unwrap();
            assert!(c < first && first < ufrag, "mid {mid}: {sec:?}");
        }
        // The refused m-line gets no transport.
        assert!(
            !section(&out, "2")
                .iter()
                .any(|l| l.starts_with("a=candidate"))
        );
        assert!(out.ends_with("a=mid:2\r\n"));
        assert!(!out.contains("\r\r") && !out.contains("\n\n"));
    }

    #[test]
    fn completing_twice_changes_nothing_more() {
        let once = complete_candidates(&answer());
        assert_eq!(complete_candidates(&once), once);
    }

    #[test]
    fn an_sdp_without_candidates_is_left_alone() {
        let sdp = answer().replace(&format!("{CAND_UDP}\r\n{CAND_TCP}\r\n"), "");
        assert_eq!(complete_candidates(&sdp), sdp);
    }

    #[test]
    fn what_str0m_writes_parses_back_with_candidates_everywhere() {
        use str0m::change::SdpOffer;
        use str0m::media::{Direction, MediaKind};
        use str0m::{Candidate, Rtc};
        let now = std::time::Instant::now();
        let mut rtc = Rtc::builder().set_ice_lite(true).build(now);
        let addr = "10.0.0.1:5000".parse().unwrap();
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, _) = api.apply().unwrap();
        let raw = offer.to_sdp_string();
        assert_eq!(raw.matches("a=candidate:").count(), 1, "{raw}");
        let out = complete_candidates(&raw);
        assert_eq!(out.matches("a=candidate:").count(), 2, "{out}");
        assert_eq!(out.matches("a=end-of-candidates").count(), 2, "{out}");
        SdpOffer::from_sdp_string(&out).expect("still valid SDP");
    }
}
