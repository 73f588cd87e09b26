//! Recording messages of a signaling session: the teacher's `startRecording` and
//! `stopRecording`, and observation notes (`note`) in master lessons.

use ketang_sfu::{LessonMode, Role};
use tokio::time::Instant;

use super::floor::clean_text;
use super::protocol::{ClientMsg, ErrorCode, NoteInfo, ServerMsg};
use super::session::Session;
use crate::library::catalog::{self, Note};
use crate::library::live::state_notice;

impl Session {
    pub(super) async fn on_recording(&mut self, msg: ClientMsg) {
        match msg {
            ClientMsg::StartRecording {} => self.recording_command(true).await,
            ClientMsg::StopRecording {} => self.recording_command(false).await,
            ClientMsg::Note { text } => self.note(text).await,
            _ => {}
        }
    }

    /// Tells a newly welcomed client whether the lesson is being recorded.
    pub(super) async fn send_recording_state(&mut self) {
        if let Some(a) = self.state.library.live.active(&self.claims.room) {
            self.send(ServerMsg::from_notice(state_notice(Some(&a))))
                .await;
        }
    }

    async fn recording_command(&mut self, on: bool) {
        let reference = if on {
            "startRecording"
        } else {
            "stopRecording"
        };
        if self.claims.role != Role::Teacher {
            self.send(ServerMsg::error(
                ErrorCode::Forbidden,
                "only the teacher may start or stop the recording",
                Some(reference),
            ))
            .await;
            return;
        }
        if self.shard.is_none() {
            self.send(ServerMsg::error(
                ErrorCode::NotJoined,
                "join with an offer first",
                Some(reference),
            ))
            .await;
            return;
        }
        let live = &self.state.library.live;
        let room = self.claims.room.clone();
        let result = if on {
            live.start(&self.state, &room).await
        } else {
            live.stop(&self.state, &room).await
        };
        match result {
            Ok(_) => {
                let action = if on {
                    "recording.start"
                } else {
                    "recording.stop"
                };
                let entry = crate::api::audit::Audit::new(action, room.as_str());
                crate::api::audit::record_in_room(&self.state, &self.claims, entry).await;
            }
            Err(e) => {
                self.send(ServerMsg::error(
                    ErrorCode::RecordingFailed,
                    e.to_string(),
                    Some(reference),
                ))
                .await;
            }
        }
    }

    async fn note(&mut self, text: String) {
        let master = self.claims.mode == Some(LessonMode::Master);
        let role = self.claims.role;
        if !master || !matches!(role, Role::Teacher | Role::Observer) {
            self.send(ServerMsg::error(
                ErrorCode::Forbidden,
                "observation notes are for the teacher and observers of master lessons (名师课堂)",
                Some("note"),
            ))
            .await;
            return;
        }
        if !self.text_bucket.take(Instant::now()) {
            self.send(ServerMsg::error(
                ErrorCode::RateLimited,
                "more than one note per second; note dropped",
                Some("note"),
            ))
            .await;
            return;
        }
        let text = match clean_text(&text) {
            Ok(t) => t,
            Err(m) => {
                self.send(ServerMsg::error(ErrorCode::BadMessage, m, Some("note")))
                    .await;
                return;
            }
        };
        let Some(active) = self.state.library.live.active(&self.claims.room) else {
            self.send(ServerMsg::error(
                ErrorCode::NotRecording,
                "the lesson is not being recorded, so a note has nothing to attach to",
                Some("note"),
            ))
            .await;
            return;
        };
        let now = self.state.clock.now_ms_u64();
        let at_ms = now.saturating_sub(active.started_ms);
        let note = Note::new(
            active.id.as_str(),
            at_ms as i64,
            &self.claims.name,
            role.as_str(),
            &text,
            "live",
            now as i64,
        );
        let stored = match self.state.db.pool.acquire().await {
            Ok(mut conn) => catalog::add_note(&mut conn, &note).await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(()) => {
                let info = NoteInfo {
                    id: note.id,
                    recording_id: note.recording_id,
                    at_ms,
                    author: note.author,
                    role: note.role,
                    text: note.text,
                };
                self.send(ServerMsg::NoteAdded { note: info }).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "note not stored");
                self.send(ServerMsg::error(
                    ErrorCode::Internal,
                    "the note could not be stored; try again",
                    Some("note"),
                ))
                .await;
            }
        }
    }
}
