//! Lesson-control messages of a signaling session: validated here (text, rate, role for
//! re-admission), decided by the shard's floor policy.

use ketang_sfu::{FloorCommand, FloorContext, FloorOutcome, MAX_TEXT_CHARS, Role};
use tokio::time::Instant;

use super::protocol::{ClientMsg, ErrorCode, ServerMsg};
use super::session::Session;
use crate::api::audit::{self, Audit};

/// Chat text as the server accepts it: trimmed, 1–500 characters, no control characters
/// except line breaks. Clients render it as text, never as markup.
pub fn clean_text(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("the text is empty".into());
    }
    if t.chars().count() > MAX_TEXT_CHARS {
        return Err(format!(
            "the text is longer than {MAX_TEXT_CHARS} characters"
        ));
    }
    let clean: String = t
        .chars()
        .filter(|c| (!c.is_control() || *c == '\n') && !crate::auth::is_invisible_format(*c))
        .collect();
    if clean.trim().is_empty() {
        return Err("the text is empty".into());
    }
    Ok(clean)
}

impl Session {
    pub(super) async fn on_floor(&mut self, msg: ClientMsg) {
        let reference = message_name(&msg);
        let cmd = match msg {
            ClientMsg::RaiseHand {} => FloorCommand::RaiseHand,
            ClientMsg::LowerHand {} => FloorCommand::LowerHand,
            ClientMsg::CallOn { peer_id, replace } => FloorCommand::CallOn {
                peer: peer_id,
                replace,
            },
            ClientMsg::Done { peer_id } => FloorCommand::Done { peer: peer_id },
            ClientMsg::RollCall {} => FloorCommand::RollCall,
            ClientMsg::Mute {
                peer_id,
                mic,
                video,
            } => FloorCommand::Mute {
                peer: peer_id,
                mic,
                video,
            },
            ClientMsg::MuteAllClassrooms {} => FloorCommand::MuteAllClassrooms,
            ClientMsg::SetMuted { mic, video } => FloorCommand::SelfMute { mic, video },
            ClientMsg::Chat { text } | ClientMsg::Ask { text } if !self.text_allowed() => {
                let _ = text;
                self.send(ServerMsg::error(
                    ErrorCode::RateLimited,
                    "more than one chat message per second; message dropped",
                    Some(reference),
                ))
                .await;
                return;
            }
            ClientMsg::Chat { text } => match clean_text(&text) {
                Ok(text) => FloorCommand::Chat { text },
                Err(m) => return self.bad(m, reference).await,
            },
            ClientMsg::Ask { text } => match clean_text(&text) {
                Ok(text) => FloorCommand::Ask { text },
                Err(m) => return self.bad(m, reference).await,
            },
            ClientMsg::SettleQuestion { id, answered } => {
                FloorCommand::SettleQuestion { id, answered }
            }
            ClientMsg::Remove { peer_id } => FloorCommand::Remove { peer: peer_id },
            ClientMsg::Readmit { peer_id } => {
                if self.claims.role != Role::Teacher {
                    self.send(ServerMsg::error(
                        ErrorCode::Forbidden,
                        "only the teacher may re-admit participants",
                        Some(reference),
                    ))
                    .await;
                } else if !self.state.readmit_link(&self.claims.room, peer_id).await {
                    self.bad(format!("{peer_id} was not removed"), reference)
                        .await;
                } else {
                    let detail = serde_json::json!({"peerId": peer_id});
                    let entry = Audit::new("room.readmit", self.claims.room.as_str());
                    audit::record_in_room(&self.state, &self.claims, entry.detail(detail)).await;
                }
                return;
            }
            // Offer, answer, leave and ping are handled by the session itself.
            _ => return,
        };
        let Some(shard) = self.shard.and_then(|i| self.state.media.shards().get(i)) else {
            self.send(ServerMsg::error(
                ErrorCode::NotJoined,
                "join with an offer first",
                Some(reference),
            ))
            .await;
            return;
        };
        let ctx = FloorContext {
            now_ms: self.state.clock.now_ms_u64(),
            random: rand::random(),
        };
        // Looked up before the shard removes the peer and, with it, its identity.
        let target = match &cmd {
            FloorCommand::Remove { peer } => self.state.media.people.identity(*peer),
            _ => None,
        };
        let audited = self.audited(&cmd, target.as_ref().map(|i| i.name.as_str()));
        match shard.floor(self.peer, cmd, ctx).await {
            Ok(outcome) => {
                if let FloorOutcome::Removed(peer) = outcome
                    && let Some(identity) = target.filter(|i| i.room == self.claims.room)
                {
                    self.state.remove_link(peer, identity).await;
                }
                if let Some(entry) = audited {
                    audit::record_in_room(&self.state, &self.claims, entry).await;
                }
            }
            Err(e) => self.send_media_error(e, reference).await,
        }
    }

    /// The audit entry of a teacher's action on others (who was removed, muted, called on);
    /// the students' own hands, chat and questions are not audited.
    fn audited(&self, cmd: &FloorCommand, target_name: Option<&str>) -> Option<Audit> {
        let (action, detail) = match cmd {
            FloorCommand::Remove { peer } => (
                "room.remove",
                serde_json::json!({"peerId": peer, "name": target_name}),
            ),
            FloorCommand::Mute { peer, mic, video } => (
                "room.mute",
                serde_json::json!({"peerId": peer, "mic": mic, "video": video}),
            ),
            FloorCommand::MuteAllClassrooms => ("room.muteAllClassrooms", serde_json::json!({})),
            FloorCommand::CallOn { peer, .. } => {
                ("room.callOn", serde_json::json!({"peerId": peer}))
            }
            _ => return None,
        };
        Some(Audit::new(action, self.claims.room.as_str()).detail(detail))
    }

    fn text_allowed(&mut self) -> bool {
        self.text_bucket.take(Instant::now())
    }

    async fn bad(&mut self, message: String, reference: &str) {
        self.send(ServerMsg::error(
            ErrorCode::BadMessage,
            message,
            Some(reference),
        ))
        .await;
    }
}

fn message_name(m: &ClientMsg) -> &'static str {
    match m {
        ClientMsg::Offer { .. } => "offer",
        ClientMsg::Answer { .. } => "answer",
        ClientMsg::Leave {} => "leave",
        ClientMsg::Ping {} => "ping",
        ClientMsg::GetStats {} => "getStats",
        ClientMsg::RaiseHand {} => "raiseHand",
        ClientMsg::LowerHand {} => "lowerHand",
        ClientMsg::CallOn { .. } => "callOn",
        ClientMsg::Done { .. } => "done",
        ClientMsg::RollCall {} => "rollCall",
        ClientMsg::Mute { .. } => "mute",
        ClientMsg::MuteAllClassrooms {} => "muteAllClassrooms",
        ClientMsg::SetMuted { .. } => "setMuted",
        ClientMsg::Chat { .. } => "chat",
        ClientMsg::Ask { .. } => "ask",
        ClientMsg::SettleQuestion { .. } => "settleQuestion",
        ClientMsg::Remove { .. } => "remove",
        ClientMsg::Readmit { .. } => "readmit",
        ClientMsg::StartRecording {} => "startRecording",
        ClientMsg::StopRecording {} => "stopRecording",
        ClientMsg::Note { .. } => "note",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_text_is_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(clean_text("  hi\u{7}\n there ").unwrap(), "hi\n there");
        assert!(clean_text("   ").is_err());
        assert!(clean_text(&"字".repeat(501)).is_err());
        assert_eq!(clean_text(&"字".repeat(500)).unwrap().chars().count(), 500);
        // Markup is kept as text: escaping is the renderer's job (textContent).
        assert_eq!(clean_text("<b>x</b>").unwrap(), "<b>x</b>");
    }

    #[test]
    fn direction_overrides_and_zero_width_characters_are_removed() {
        assert_eq!(
            clean_text("see \u{202E}fdp.exe\u{202C} and a\u{200B}b\u{2066}c\u{FEFF}").unwrap(),
            "see fdp.exe and abc"
        );
        assert!(clean_text("\u{200B}\u{200D}").is_err());
    }
}
