//! Offer screening: before str0m sees a client's offer, each m-line's direction is set to what
//! the peer's role and mode allow. An m-line the role may not send on becomes `a=inactive`, so
//! str0m's answer refuses it while the rest of the offer is accepted.
//!
//! Working on the SDP text (not str0m's parsed form) keeps str0m's answer logic untouched: the
//! answer to an `inactive` m-line is `inactive`, to `sendonly` it is `recvonly`.

use std::collections::HashMap;

use crate::lesson::role::{Role, TrackKind, TrackSource};

/// How the receiver reports back about the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Feedback {
    /// Transport-wide congestion control: str0m estimates, probes, pads and paces.
    Twcc,
    /// No transport-wide feedback: the receiver's REMB and receiver reports are all there is;
    /// str0m sends without pacing.
    Reports,
}

/// How the peer uses its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerMode {
    /// A browser (or any client) on the WebSocket signaling protocol: publishes on the m-lines
    /// of its offers, receives on m-lines the server adds by renegotiation.
    Signaling,
    /// A WHIP encoder: publishes one audio and one video m-line, never renegotiates.
    Whip,
    /// A WHEP player: receives on the m-lines of its one offer, never renegotiates.
    Whep,
}

/// An m-line of an offer that was refused, with the reason sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedMid {
    /// The m-line's mid.
    pub mid: String,
    /// Why it was refused.
    pub reason: String,
}

/// What the screening made of one accepted m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// The client publishes a track of this source on it.
    Publish(TrackSource),
    /// The server sends on it (a WHEP slot).
    Slot(TrackKind),
}

#[derive(Debug)]
pub(crate) struct Screened {
    pub sdp: String,
    pub rejected: Vec<RejectedMid>,
    pub accepted: HashMap<String, Accepted>,
    /// How the client will report on the link it receives on.
    pub feedback: Feedback,
    /// The offer's live (not stopped) audio and video m-lines, besides the server's own.
    pub media_lines: usize,
}

/// The RTP header extension transport-wide congestion control needs (draft-holmer-rmcat).
const TWCC_EXTENSION: &str = "transport-wide-cc-extensions";

/// How a client will report on its link, judged from its offer: transport-wide congestion
/// control needs its header extension (without it no feedback can come, whatever the `rtcp-fb`
/// lines say). An offer without audio or video (a signaling client that publishes nothing
/// offers only its data channel) says nothing about it yet; the m-lines the server offers such
/// a client later carry the extension, and the clients that join this way (browsers) answer it,
/// so it counts as TWCC.
pub(crate) fn offered_feedback(sdp: &str) -> Feedback {
    let media = sdp
        .lines()
        .any(|l| l.starts_with("m=audio") || l.starts_with("m=video"));
    let twcc = sdp
        .lines()
        .any(|l| l.starts_with("a=extmap:") && l.contains(TWCC_EXTENSION));
    if twcc || !media {
        Feedback::Twcc
    } else {
        Feedback::Reports
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Dir {
    fn parse(line: &str) -> Option<Dir> {
        match line.trim_end() {
            "a=sendrecv" => Some(Dir::SendRecv),
            "a=sendonly" => Some(Dir::SendOnly),
            "a=recvonly" => Some(Dir::RecvOnly),
            "a=inactive" => Some(Dir::Inactive),
            _ => None,
        }
    }

    fn line(self) -> &'static str {
        match self {
            Dir::SendRecv => "a=sendrecv",
            Dir::SendOnly => "a=sendonly",
            Dir::RecvOnly => "a=recvonly",
            Dir::Inactive => "a=inactive",
        }
    }

    /// Whether the offerer (the client) sends on the m-line.
    fn client_sends(self) -> bool {
        matches!(self, Dir::SendRecv | Dir::SendOnly)
    }

    fn client_receives(self) -> bool {
        matches!(self, Dir::SendRecv | Dir::RecvOnly)
    }
}

struct Section {
    lines: Vec<String>,
    kind: Option<TrackKind>,
    mid: Option<String>,
    dir_index: Option<usize>,
}

/// Screens a client offer for `role` in `mode`. `named` maps mids to the sources the client
/// declared (signaling clients name their screen share); unnamed m-lines get the default source
/// of their kind. `server_sends` are the mids the server already sends on (from its own
/// offers): a re-offer repeats them and they are left as they are. `may_publish` is the
/// floor's say on each source (an invited observer may speak).
pub(crate) fn screen_offer(
    sdp: &str,
    role: Role,
    mode: PeerMode,
    named: &HashMap<String, TrackSource>,
    server_sends: &[String],
    may_publish: &dyn Fn(TrackSource) -> bool,
) -> Screened {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut session: Vec<String> = Vec::new();
    let mut session_dir = Dir::SendRecv;
    let mut sections: Vec<Section> = Vec::new();

    for line in sdp.lines() {
        // A direction attribute is written back in its exact form: str0m reads only that form
        // (`a=inactive ` with a trailing space would be an unknown attribute to it, so the
        // m-line would default to sendrecv while the screening saw it inactive).
        let line: &str = Dir::parse(line).map_or(line, |d| d.line());
        if line.starts_with("m=") {
            let kind = if line.starts_with("m=audio") {
                Some(TrackKind::Audio)
            } else if line.starts_with("m=video") {
                Some(TrackKind::Video)
            } else {
                None
            };
            sections.push(Section {
                lines: vec![line.to_string()],
                kind,
                mid: None,
                dir_index: None,
            });
            continue;
        }
        match sections.last_mut() {
            None => {
                if let Some(d) = Dir::parse(line) {
                    session_dir = d;
                }
                session.push(line.to_string());
            }
            Some(sec) => {
                if let Some(mid) = line.strip_prefix("a=mid:") {
                    sec.mid = Some(mid.trim().to_string());
                }
                if Dir::parse(line).is_some() {
                    sec.dir_index = Some(sec.lines.len());
                }
                sec.lines.push(line.to_string());
            }
        }
    }

    let mut rejected = Vec::new();
    let mut accepted = HashMap::new();
    let mut seen = Seen::default();
    let mut media_lines = 0;

    for sec in &mut sections {
        // A port of 0 means the client already stopped this m-line.
        let stopped = sec.lines[0].split_whitespace().nth(1) == Some("0");
        if sec.kind.is_some()
            && !stopped
            && !sec.mid.as_ref().is_some_and(|m| server_sends.contains(m))
        {
            media_lines += 1;
        }
        let (Some(kind), Some(mid)) = (sec.kind, sec.mid.clone()) else {
            continue; // data channel, or no mid: str0m decides.
        };
        if stopped {
            continue;
        }
        let dir = sec
            .dir_index
            .and_then(|i| Dir::parse(&sec.lines[i]))
            .unwrap_or(session_dir);
        if dir == Dir::Inactive || server_sends.contains(&mid) {
            continue;
        }
        let source = named
            .get(&mid)
            .copied()
            .unwrap_or_else(|| TrackSource::default_for(kind));
        match decide(role, mode, kind, dir, source, may_publish, &mut seen) {
            Ok(a) => {
                let new_dir = match a {
                    Accepted::Publish(_) => Dir::SendOnly,
                    Accepted::Slot(_) => Dir::RecvOnly,
                };
                set_dir(sec, new_dir);
                accepted.insert(mid, a);
            }
            Err(reason) => {
                set_dir(sec, Dir::Inactive);
                rejected.push(RejectedMid { mid, reason });
            }
        }
    }

    let mut out = String::with_capacity(sdp.len() + 64);
    for l in session
        .iter()
        .chain(sections.iter().flat_map(|s| s.lines.iter()))
    {
        out.push_str(l);
        out.push_str(eol);
    }
    Screened {
        sdp: out,
        rejected,
        accepted,
        feedback: offered_feedback(sdp),
        media_lines,
    }
}

/// Which kinds a WHIP or WHEP session already used: each takes one audio and one video.
#[derive(Default)]
struct Seen {
    audio: bool,
    video: bool,
}

impl Seen {
    /// Marks `kind` used; false if it already was.
    fn first(&mut self, kind: TrackKind) -> bool {
        let flag = match kind {
            TrackKind::Audio => &mut self.audio,
            TrackKind::Video => &mut self.video,
        };
        !std::mem::replace(flag, true)
    }
}

/// The decision for one live (not stopped, not inactive) m-line.
fn decide(
    role: Role,
    mode: PeerMode,
    kind: TrackKind,
    dir: Dir,
    source: TrackSource,
    may_publish: &dyn Fn(TrackSource) -> bool,
    seen: &mut Seen,
) -> Result<Accepted, String> {
    match mode {
        PeerMode::Signaling | PeerMode::Whip if dir.client_sends() => {
            if mode == PeerMode::Whip && !seen.first(kind) {
                return Err("a WHIP session publishes one audio and one video track".into());
            }
            // WHIP encoders cannot name sources: their tracks are the microphone and camera.
            let source = if mode == PeerMode::Whip {
                TrackSource::default_for(kind)
            } else {
                source
            };
            if source.kind() != kind {
                Err(format!(
                    "source {} does not match the m-line's media kind",
                    source.as_str()
                ))
            } else if may_publish(source) {
                Ok(Accepted::Publish(source))
            } else {
                Err(role.publish_refusal(source))
            }
        }
        PeerMode::Signaling | PeerMode::Whip => {
            Err("receive-only m-lines are not used: the server offers the tracks to receive".into())
        }
        PeerMode::Whep if dir.client_receives() => {
            if seen.first(kind) {
                Ok(Accepted::Slot(kind))
            } else {
                Err("a WHEP session receives one audio and one video track".into())
            }
        }
        PeerMode::Whep => Err("a WHEP player may not publish".into()),
    }
}

fn set_dir(sec: &mut Section, dir: Dir) {
    match sec.dir_index {
        Some(i) => sec.lines[i] = dir.line().to_string(),
        None => {
            // No direction attribute: put one right after the mid.
            let at = sec
                .lines
                .iter()
                .position(|l| l.starts_with("a=mid:"))
                .map(|i| i + 1)
                .unwrap_or(sec.lines.len());
            sec.lines.insert(at, dir.line().to_string());
            sec.dir_index = Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_is_judged_from_the_offer_s_media() {
        let twcc = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n";
        let reports = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n";
        let data_only = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        assert_eq!(offered_feedback(twcc), Feedback::Twcc);
        assert_eq!(offered_feedback(reports), Feedback::Reports);
        assert_eq!(offered_feedback(data_only), Feedback::Twcc);
    }

    fn offer(sections: &[(&str, &str, Option<&str>)]) -> String {
        let mut s = String::from(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n",
        );
        for (kind, mid, dir) in sections {
            s.push_str(&format!(
                "m={kind} 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n"
            ));
            s.push_str(&format!("a=mid:{mid}\r\n"));
            if let Some(d) = dir {
                s.push_str(&format!("a={d}\r\n"));
            }
            s.push_str("a=rtcp-mux\r\n");
        }
        s
    }

    fn dir_of(sdp: &str, mid: &str) -> String {
        let sec = sdp
            .split("m=")
            .find(|s| s.contains(&format!("a=mid:{mid}\r\n")))
            .unwrap();
        sec.lines()
            .find(|l| Dir::parse(l).is_some())
            .unwrap()
            .to_string()
    }

    #[test]
    fn classroom_may_publish_camera_and_mic_but_not_screen() {
        let sdp = offer(&[
            ("audio", "0", Some("sendonly")),
            ("video", "1", Some("sendrecv")),
            ("video", "2", Some("sendonly")),
        ]);
        let named = HashMap::from([("2".to_string(), TrackSource::Screen)]);
        let s = screen_offer(
            &sdp,
            Role::Classroom,
            PeerMode::Signaling,
            &named,
            &[],
            &|s| Role::Classroom.may_publish(s),
        );
        assert_eq!(dir_of(&s.sdp, "0"), "a=sendonly");
        // sendrecv is narrowed: the server never sends on a publishing m-line.
        assert_eq!(dir_of(&s.sdp, "1"), "a=sendonly");
        assert_eq!(dir_of(&s.sdp, "2"), "a=inactive");
        assert_eq!(s.rejected.len(), 1);
        assert_eq!(s.rejected[0].mid, "2");
        assert!(s.rejected[0].reason.contains("may not publish screen"));
        assert_eq!(s.accepted["0"], Accepted::Publish(TrackSource::Mic));
        assert_eq!(s.accepted["1"], Accepted::Publish(TrackSource::Camera));
        assert!(s.sdp.contains("\r\n") && !s.sdp.contains("\r\r"));
    }

    #[test]
    fn viewer_send_lines_become_inactive_and_missing_direction_is_sendrecv() {
        let sdp = offer(&[("audio", "0", None), ("video", "1", Some("sendonly"))]);
        let s = screen_offer(
            &sdp,
            Role::Viewer,
            PeerMode::Signaling,
            &HashMap::new(),
            &[],
            &|s| Role::Viewer.may_publish(s),
        );
        assert_eq!(dir_of(&s.sdp, "0"), "a=inactive");
        assert_eq!(dir_of(&s.sdp, "1"), "a=inactive");
        assert_eq!(s.rejected.len(), 2);
        assert!(s.accepted.is_empty());
    }

    #[test]
    fn whip_takes_one_audio_and_one_video() {
        let sdp = offer(&[
            ("audio", "0", Some("sendonly")),
            ("video", "1", Some("sendonly")),
            ("video", "2", Some("sendonly")),
        ]);
        let s = screen_offer(
            &sdp,
            Role::Teacher,
            PeerMode::Whip,
            &HashMap::new(),
            &[],
            &|s| Role::Teacher.may_publish(s),
        );
        assert_eq!(s.accepted.len(), 2);
        assert_eq!(dir_of(&s.sdp, "2"), "a=inactive");
        assert!(s.rejected[0].reason.contains("one audio and one video"));
    }

    #[test]
    fn whep_receives_on_its_recvonly_lines() {
        let sdp = offer(&[
            ("audio", "0", Some("recvonly")),
            ("video", "1", Some("sendrecv")),
        ]);
        let s = screen_offer(
            &sdp,
            Role::Viewer,
            PeerMode::Whep,
            &HashMap::new(),
            &[],
            &|s| Role::Viewer.may_publish(s),
        );
        assert_eq!(s.accepted["0"], Accepted::Slot(TrackKind::Audio));
        assert_eq!(s.accepted["1"], Accepted::Slot(TrackKind::Video));
        assert_eq!(dir_of(&s.sdp, "1"), "a=recvonly");
        assert!(s.rejected.is_empty());
    }

    #[test]
    fn a_reoffer_keeps_the_lines_the_server_sends_on() {
        let sdp = offer(&[
            ("audio", "0", Some("sendonly")),
            ("video", "3", Some("recvonly")),
            ("video", "4", Some("recvonly")),
        ]);
        let s = screen_offer(
            &sdp,
            Role::Classroom,
            PeerMode::Signaling,
            &HashMap::new(),
            &["3".to_string()],
            &|s| Role::Classroom.may_publish(s),
        );
        assert_eq!(dir_of(&s.sdp, "3"), "a=recvonly");
        // An unknown receive-only line is refused.
        assert_eq!(dir_of(&s.sdp, "4"), "a=inactive");
        assert_eq!(s.rejected.len(), 1);
    }

    #[test]
    fn stopped_and_application_lines_are_left_alone() {
        let mut sdp = offer(&[("audio", "0", Some("sendonly"))]);
        sdp = sdp.replace("m=audio 9", "m=audio 0");
        sdp.push_str("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:1\r\n");
        let s = screen_offer(
            &sdp,
            Role::Viewer,
            PeerMode::Signaling,
            &HashMap::new(),
            &[],
            &|s| Role::Viewer.may_publish(s),
        );
        assert!(s.rejected.is_empty());
        assert_eq!(s.sdp, sdp);
    }
}
