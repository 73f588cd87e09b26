//! Roles and what they may publish and receive. This is the one place where the room's media
//! policy is written down; the SFU asks it before opening any subscription.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a participant is in a lesson. Carried in the room token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// Leads the lesson: publishes microphone, camera and screen; receives every classroom.
    Teacher,
    /// A remote (or the master) classroom: publishes microphone and camera; receives the
    /// teacher and the other classrooms.
    Classroom,
    /// Watches a lesson (teaching research, 名师课堂): receives teachers and classrooms.
    Observer,
    /// Watches a broadcast lesson (名校网络课堂): receives teachers only.
    Viewer,
}

/// What a published track carries. Decides layout in clients and priority in the SFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrackSource {
    /// A microphone (audio).
    Mic,
    /// A camera (video).
    Camera,
    /// A shared screen or courseware window (video).
    Screen,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrackKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

impl TrackSource {
    /// The media kind a source produces.
    pub fn kind(self) -> TrackKind {
        match self {
            TrackSource::Mic => TrackKind::Audio,
            TrackSource::Camera | TrackSource::Screen => TrackKind::Video,
        }
    }

    /// The source assumed for an m-line whose source the client did not name.
    pub fn default_for(kind: TrackKind) -> TrackSource {
        match kind {
            TrackKind::Audio => TrackSource::Mic,
            TrackKind::Video => TrackSource::Camera,
        }
    }
}

impl Role {
    /// All roles, for iteration in tests and metrics.
    pub const ALL: [Role; 4] = [Role::Teacher, Role::Classroom, Role::Observer, Role::Viewer];

    /// Whether this role may publish a track of `source`.
    pub fn may_publish(self, source: TrackSource) -> bool {
        match self {
            Role::Teacher => true,
            Role::Classroom => matches!(source, TrackSource::Mic | TrackSource::Camera),
            Role::Observer | Role::Viewer => false,
        }
    }

    /// Whether this role may publish anything at all.
    pub fn publishes(self) -> bool {
        matches!(self, Role::Teacher | Role::Classroom)
    }

    /// Whether a participant of this role receives tracks published by `publisher`.
    /// Observers publish only when invited to speak (master lessons), and then everyone
    /// hears them.
    pub fn receives_from(self, publisher: Role) -> bool {
        match publisher {
            Role::Teacher | Role::Observer => true,
            Role::Classroom => !matches!(self, Role::Viewer),
            Role::Viewer => false,
        }
    }

    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Teacher => "teacher",
            Role::Classroom => "classroom",
            Role::Observer => "observer",
            Role::Viewer => "viewer",
        }
    }

    /// A sentence for the client when a publish is refused.
    pub fn publish_refusal(self, source: TrackSource) -> String {
        format!("role {} may not publish {}", self.as_str(), source.as_str())
    }
}

impl TrackSource {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackSource::Mic => "mic",
            TrackSource::Camera => "camera",
            TrackSource::Screen => "screen",
        }
    }
}

impl TrackKind {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Audio => "audio",
            TrackKind::Video => "video",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "teacher" => Ok(Role::Teacher),
            "classroom" => Ok(Role::Classroom),
            "observer" => Ok(Role::Observer),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!(
                "unknown role {other:?}: expected teacher, classroom, observer or viewer"
            )),
        }
    }
}

/// Observers and viewers: possibly hundreds, so they are counted rather than listed, and
/// their comings and goings are told only to the people who run the lesson.
pub(crate) fn is_audience(role: Role) -> bool {
    matches!(role, Role::Observer | Role::Viewer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;
    use TrackSource::*;

    #[test]
    fn publish_rights_follow_the_role_table() {
        assert!(
            Teacher.may_publish(Screen) && Teacher.may_publish(Camera) && Teacher.may_publish(Mic)
        );
        assert!(Classroom.may_publish(Mic) && Classroom.may_publish(Camera));
        assert!(!Classroom.may_publish(Screen));
        for s in [Mic, Camera, Screen] {
            assert!(!Observer.may_publish(s));
            assert!(!Viewer.may_publish(s));
        }
    }

    #[test]
    fn receive_rights_follow_the_role_table() {
        // Everyone receives the teacher.
        for r in Role::ALL {
            assert!(r.receives_from(Teacher));
        }
        // Viewers of a broadcast receive nothing but the teacher.
        assert!(!Viewer.receives_from(Classroom));
        assert!(Teacher.receives_from(Classroom));
        assert!(Classroom.receives_from(Classroom));
        assert!(Observer.receives_from(Classroom));
    }

    #[test]
    fn roles_parse_from_their_wire_names() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        assert!("admin".parse::<Role>().is_err());
    }
}
