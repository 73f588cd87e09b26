//! Bookkeeping of the signaling client: reading the first JSON frames, the mid/msid → track map that identifies received
//! tracks, and the counters of `welcome`, `participantJoined/Left` and `trackAdded/Removed`.
//! Everything here reads untrusted JSON leniently: missing or mistyped fields are skipped.

use super::{RemoteTrackInfo, Shared, Ws, WsStats, lock};
use crate::error::ClientError;
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Read the next JSON text message (bounded).
pub(super) async fn read_json(
    ws: &mut Ws,
    timeout: Duration,
    what: &'static str,
) -> Result<Value, ClientError> {
    let deadline = tokio::time::Instant::now() + timeout;
    // Bounded both by the deadline and by the number of frames skipped.
    for _ in 0..64 {
        let next = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| ClientError::Timeout {
                what,
                after: timeout,
            })?;
        match next {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text)
                    .map_err(|e| ClientError::Protocol(format!("{what}: not JSON: {e}")));
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(ClientError::Protocol(format!(
                    "closed before {what}: {frame:?}"
                )));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(ClientError::Protocol(format!("{what}: {e}"))),
            None => return Err(ClientError::Protocol(format!("closed before {what}"))),
        }
    }
    Err(ClientError::Protocol(format!(
        "no {what} among the first frames"
    )))
}

/// Remember what each m-line of a server offer carries, by mid and by msid track id.
pub(super) fn record_offer_tracks(shared: &Shared, msg: &Value, sdp: &str) {
    let now = Instant::now();
    let msids = msid_by_mid(sdp);
    let mut by_mid = lock(&shared.by_mid);
    let mut by_msid = lock(&shared.by_msid);
    for t in msg["tracks"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let (Some(mid), Some(track_id), Some(peer_id)) = (
            t["mid"].as_str(),
            t["trackId"].as_u64(),
            t["peerId"].as_u64(),
        ) else {
            continue;
        };
        let info = RemoteTrackInfo {
            mid: mid.to_owned(),
            track_id,
            peer_id,
            kind: t["kind"].as_str().unwrap_or("").to_owned(),
            source: t["source"].as_str().unwrap_or("").to_owned(),
            offered_at: by_mid.get(mid).map_or(now, |old| {
                if old.track_id == track_id {
                    old.offered_at
                } else {
                    now
                }
            }),
        };
        if let Some(msid) = msids.get(mid) {
            by_msid.insert(msid.clone(), info.clone());
        }
        by_mid.insert(mid.to_owned(), info);
    }
}

pub(super) fn record_welcome(shared: &Shared, welcome: &Value) {
    let mut stats = lock(&shared.stats);
    for p in welcome["participants"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        if let Some(id) = p["peerId"].as_u64() {
            stats
                .participants
                .insert(id, p["role"].as_str().unwrap_or("").into());
        }
    }
    for t in welcome["tracks"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        insert_track(&mut stats, t);
    }
}

fn insert_track(stats: &mut WsStats, t: &Value) {
    if let (Some(tid), Some(pid)) = (t["trackId"].as_u64(), t["peerId"].as_u64()) {
        let kind = t["kind"].as_str().unwrap_or("").to_owned();
        let source = t["source"].as_str().unwrap_or("").to_owned();
        stats.tracks.insert(tid, (pid, kind, source));
    }
}

pub(super) fn record_event(shared: &Shared, msg: &Value) {
    let mut stats = lock(&shared.stats);
    match msg["type"].as_str().unwrap_or("") {
        "participantJoined" => {
            stats.events[0] += 1;
            let p = &msg["participant"];
            if let Some(id) = p["peerId"].as_u64() {
                stats
                    .participants
                    .insert(id, p["role"].as_str().unwrap_or("").into());
            }
        }
        "participantLeft" => {
            stats.events[1] += 1;
            if let Some(id) = msg["peerId"].as_u64() {
                stats.participants.remove(&id);
            }
        }
        "trackAdded" => {
            stats.events[2] += 1;
            insert_track(&mut stats, &msg["track"]);
        }
        "trackRemoved" => {
            stats.events[3] += 1;
            if let Some(id) = msg["trackId"].as_u64() {
                stats.tracks.remove(&id);
            }
        }
        _ => {}
    }
}

/// The server's description of the m-line webrtc-rs announced with msid track id `msid`.
pub(super) fn lookup(shared: &Shared, msid: &str) -> Option<RemoteTrackInfo> {
    if let Some(info) = lock(&shared.by_msid).get(msid) {
        return Some(info.clone());
    }
    // Ketang uses the track id as the msid track id; fall back to that.
    let id: u64 = msid.parse().ok()?;
    lock(&shared.by_mid)
        .values()
        .find(|i| i.track_id == id)
        .cloned()
}

/// mid → msid track id for every m-section of `sdp` that has both.
pub(crate) fn msid_by_mid(sdp: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let (mut mid, mut msid): (Option<&str>, Option<&str>) = (None, None);
    let mut flush = |mid: &mut Option<&str>, msid: &mut Option<&str>| {
        if let (Some(m), Some(t)) = (mid.take(), msid.take()) {
            out.insert(m.to_owned(), t.to_owned());
        }
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            flush(&mut mid, &mut msid);
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.trim());
        } else if let Some(v) = line.strip_prefix("a=msid:") {
            msid = v.split_whitespace().nth(1);
        }
    }
    flush(&mut mid, &mut msid);
    out
}

pub(super) fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msids_are_mapped_per_m_section() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=msid:3 11\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=msid:3 12\r\na=mid:1\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";
        let m = msid_by_mid(sdp);
        assert_eq!(m.get("0").map(String::as_str), Some("11"));
        assert_eq!(m.get("1").map(String::as_str), Some("12"));
        assert_eq!(m.get("2"), None);
    }
}
