//! Which published video m-lines take keyframe requests, from the offer's RTCP feedback.
//!
//! A publisher that negotiates neither `nack pli` nor `ccm fir` for any payload type of a video
//! m-line cannot be asked for a keyframe (RFC 4585 §4.2: feedback not negotiated is not sent):
//! an RTMP bridge, a file or camera relay. New viewers of such a track can only start at the
//! keyframes the source makes by itself, every GOP, so the SFU keeps a whole GOP for them
//! (`forward/recent.rs`) instead of a moment.

/// The mids of the offer's video m-lines that offer no PLI and no FIR feedback.
pub(crate) fn deaf_video_mids(sdp: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut section: Option<(bool, Option<String>, bool)> = None; // (video, mid, asks)
    let close = |s: Option<(bool, Option<String>, bool)>, out: &mut Vec<String>| {
        if let Some((true, Some(mid), false)) = s {
            out.push(mid);
        }
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            close(section.take(), &mut out);
            section = Some((line.starts_with("m=video"), None, false));
            continue;
        }
        let Some((_, mid, asks)) = section.as_mut() else {
            continue;
        };
        if let Some(m) = line.strip_prefix("a=mid:") {
            *mid = Some(m.trim().to_string());
        } else if let Some(fb) = line.strip_prefix("a=rtcp-fb:") {
            // `a=rtcp-fb:<pt> <type> [<subtype>]`: compare the words after the payload type.
            let mut words = fb.split_whitespace();
            let _pt = words.next();
            let kind = (words.next(), words.next(), words.next());
            if matches!(
                kind,
                (Some("nack"), Some("pli"), None) | (Some("ccm"), Some("fir"), None)
            ) {
                *asks = true;
            }
        }
    }
    close(section, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_video_m_line_without_pli_or_fir_is_deaf_to_keyframe_requests() {
        let sdp = "v=0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:1\r\na=rtcp-fb:102 nack\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=rtcp-fb:96 nack pli\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 97\r\na=mid:3\r\na=rtcp-fb:* ccm fir\r\n";
        assert_eq!(deaf_video_mids(sdp), ["1"]);
        assert!(deaf_video_mids("v=0\r\n").is_empty());
    }
}
