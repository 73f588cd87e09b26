//! What the lesson decides: roles and what each may send and receive, the floor (stage,
//! hands, mutes), lesson control (calling on, chat, questions, removal), the room that owns
//! its tracks and peers, and the active speaker.

pub(crate) mod control;
pub(crate) mod floor;
pub(crate) mod role;
pub(crate) mod room;
pub(crate) mod speaker;
pub(crate) mod state_push;
