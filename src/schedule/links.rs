//! Lesson links: who gets one in each mode, what name it shows, and when it is valid.
//!
//! Every link of an occurrence opens the same room (the occurrence id), is valid from
//! `schedule.link_lead` before the start to `schedule.link_grace` after the end, and carries
//! the occurrence id and its link version (`lesson`, `lv`), so that reissuing links (a new
//! version) revokes every older one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ketang_sfu::Role;
use serde::Serialize;
use utoipa::ToSchema;

use super::model::LessonMode;
use crate::auth::{LessonBinding, MAX_NAME_CHARS, MintError, MintRequest, TokenAuthority};
use crate::db::ids::{ClassroomId, OccurrenceId};

/// Which place in the lesson a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum LinkKind {
    /// The lesson's teacher.
    Teacher,
    /// The classroom the teacher teaches from.
    MasterClassroom,
    /// A remote classroom (dedicated and master modes).
    RemoteClassroom,
    /// Teachers of other schools watching (master mode).
    Observer,
    /// The audience of a broadcast (broadcast mode).
    Viewer,
}

/// Who a link is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    pub kind: LinkKind,
    pub role: Role,
    /// Display name in the room.
    pub name: String,
    pub classroom: Option<ClassroomId>,
}

/// The people and places of a lesson, with their display names.
#[derive(Debug, Clone)]
pub struct Cast {
    pub teacher_name: String,
    pub master: (ClassroomId, String),
    pub remote: Vec<(ClassroomId, String)>,
}

/// Name shown for an observer link.
pub const OBSERVER_NAME: &str = "观摩 Observer";
/// Name shown for a viewer link.
pub const VIEWER_NAME: &str = "观看 Viewer";

/// The links of a lesson in `mode`: the teacher, the master classroom, each remote classroom
/// (dedicated, master), an observer link (master) and a viewer link (broadcast).
pub fn plan(mode: LessonMode, cast: &Cast) -> Vec<LinkSpec> {
    let classroom = |kind, (id, name): &(ClassroomId, String)| LinkSpec {
        kind,
        role: Role::Classroom,
        name: name.clone(),
        classroom: Some(id.clone()),
    };
    let mut links = vec![
        LinkSpec {
            kind: LinkKind::Teacher,
            role: Role::Teacher,
            name: cast.teacher_name.clone(),
            classroom: None,
        },
        classroom(LinkKind::MasterClassroom, &cast.master),
    ];
    if mode != LessonMode::Broadcast {
        links.extend(
            cast.remote
                .iter()
                .map(|c| classroom(LinkKind::RemoteClassroom, c)),
        );
    }
    match mode {
        LessonMode::Dedicated => {}
        LessonMode::Master => links.push(LinkSpec {
            kind: LinkKind::Observer,
            role: Role::Observer,
            name: OBSERVER_NAME.to_owned(),
            classroom: None,
        }),
        LessonMode::Broadcast => links.push(LinkSpec {
            kind: LinkKind::Viewer,
            role: Role::Viewer,
            name: VIEWER_NAME.to_owned(),
            classroom: None,
        }),
    }
    links
}

/// A classroom's name in a room: school and classroom, cut to the token's name limit.
pub fn classroom_display_name(school: &str, classroom: &str) -> String {
    let full = format!("{school} {classroom}");
    full.chars()
        .take(MAX_NAME_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// When the links of an occurrence are valid, Unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkWindow {
    pub from_ms: i64,
    pub until_ms: i64,
}

impl LinkWindow {
    pub fn of(start_ms: i64, end_ms: i64, lead: Duration, grace: Duration) -> LinkWindow {
        LinkWindow {
            from_ms: start_ms - i64::try_from(lead.as_millis()).unwrap_or(i64::MAX / 4),
            until_ms: end_ms + i64::try_from(grace.as_millis()).unwrap_or(i64::MAX / 4),
        }
    }

    pub fn contains(&self, now_ms: i64) -> bool {
        self.from_ms <= now_ms && now_ms < self.until_ms
    }
}

/// A signed link.
#[derive(Debug, Clone)]
pub struct Minted {
    pub spec: LinkSpec,
    pub token: String,
    pub url: String,
}

/// Signs one token per spec for the occurrence's room, valid in `window`.
#[allow(clippy::too_many_arguments)]
pub fn mint(
    tokens: &TokenAuthority,
    base_url: &str,
    mode: LessonMode,
    occurrence: &OccurrenceId,
    link_version: u32,
    window: LinkWindow,
    specs: Vec<LinkSpec>,
    now: SystemTime,
) -> Result<Vec<Minted>, MintError> {
    let from = UNIX_EPOCH + Duration::from_millis(u64::try_from(window.from_ms).unwrap_or(0));
    let ttl = Duration::from_millis(u64::try_from(window.until_ms - window.from_ms).unwrap_or(0));
    let binding = LessonBinding {
        occurrence: occurrence.to_string(),
        link_version,
    };
    let room = occurrence
        .room()
        .map_err(|e| MintError::Signing(format!("occurrence {occurrence}: {e}")))?;
    // The room runs the lesson's floor rules (who hears whom) from the links' mode claim.
    let sfu_mode = match mode {
        LessonMode::Dedicated => ketang_sfu::LessonMode::Dedicated,
        LessonMode::Master => ketang_sfu::LessonMode::Master,
        LessonMode::Broadcast => ketang_sfu::LessonMode::Broadcast,
    };
    specs
        .into_iter()
        .map(|spec| {
            let req = MintRequest {
                room: room.clone(),
                role: spec.role,
                name: spec.name.clone(),
                classroom: spec
                    .classroom
                    .as_ref()
                    .and_then(|c| ketang_sfu::ClassroomId::new(c.as_str()).ok()),
                mode: Some(sfu_mode),
                not_before: Some(from),
                ttl,
            };
            let token = tokens.mint_lesson(&req, &binding, now)?;
            let url = format!("{base_url}/r/{room}?t={token}");
            Ok(Minted { spec, token, url })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cast() -> Cast {
        Cast {
            teacher_name: "李老师".into(),
            master: (ClassroomId::generate(1), "实验小学 三(1)班".into()),
            remote: vec![
                (ClassroomId::generate(2), "东山小学 三(2)班".into()),
                (ClassroomId::generate(3), "西岭小学 三(1)班".into()),
            ],
        }
    }

    fn kinds(mode: LessonMode) -> Vec<(LinkKind, Role)> {
        plan(mode, &cast())
            .iter()
            .map(|l| (l.kind, l.role))
            .collect()
    }

    #[test]
    fn each_mode_gets_its_links() {
        use LinkKind::*;
        assert_eq!(
            kinds(LessonMode::Dedicated),
            [
                (Teacher, Role::Teacher),
                (MasterClassroom, Role::Classroom),
                (RemoteClassroom, Role::Classroom),
                (RemoteClassroom, Role::Classroom),
            ]
        );
        assert_eq!(
            kinds(LessonMode::Master).last(),
            Some(&(Observer, Role::Observer))
        );
        assert_eq!(kinds(LessonMode::Master).len(), 5);
        assert_eq!(
            kinds(LessonMode::Broadcast),
            [
                (Teacher, Role::Teacher),
                (MasterClassroom, Role::Classroom),
                (Viewer, Role::Viewer),
            ]
        );
        let cast = cast();
        let links = plan(LessonMode::Dedicated, &cast);
        assert_eq!(links[2].name, "东山小学 三(2)班");
        assert_eq!(links[2].classroom, Some(cast.remote[0].0.clone()));
        assert_eq!(links[1].classroom, Some(cast.master.0.clone()));
    }

    #[test]
    fn display_names_fit_the_token_limit() {
        let long = classroom_display_name(&"长".repeat(63), "三(2)班");
        assert_eq!(
            long.chars().count(),
            MAX_NAME_CHARS - 1,
            "trailing space trimmed"
        );
        assert_eq!(
            classroom_display_name(&"长".repeat(70), "x")
                .chars()
                .count(),
            MAX_NAME_CHARS
        );
        assert_eq!(
            classroom_display_name("东山小学", "三(2)班"),
            "东山小学 三(2)班"
        );
    }

    #[test]
    fn links_are_valid_from_the_lead_to_the_grace_and_bound_to_the_occurrence() {
        let tokens = TokenAuthority::new(b"0123456789abcdef0123456789abcdef", Duration::ZERO);
        let occ = OccurrenceId::generate(1);
        let start = 1_772_409_600_000;
        let window = LinkWindow::of(
            start,
            start + 45 * 60_000,
            Duration::from_secs(900),
            Duration::from_secs(600),
        );
        assert_eq!(window.until_ms - window.from_ms, (15 + 45 + 10) * 60_000);
        let now = UNIX_EPOCH + Duration::from_secs(1_772_000_000);
        let cast = cast();
        let links = mint(
            &tokens,
            "https://k.example",
            LessonMode::Dedicated,
            &occ,
            4,
            window,
            plan(LessonMode::Dedicated, &cast),
            now,
        )
        .expect("mint");
        assert_eq!(links.len(), 4);
        let link = &links[1];
        assert_eq!(
            link.url,
            format!("https://k.example/r/{occ}?t={}", link.token)
        );
        let at = |ms: i64| UNIX_EPOCH + Duration::from_millis(ms as u64);
        let c = tokens
            .verify(&link.token, occ.room().ok().as_ref(), at(window.from_ms))
            .expect("valid at the start of the window");
        assert_eq!(c.lesson.as_deref(), Some(occ.as_str()));
        assert_eq!(c.lv, Some(4));
        assert_eq!(c.role, Role::Classroom);
        assert_eq!(c.mode, Some(ketang_sfu::LessonMode::Dedicated));
        assert_eq!(
            c.classroom.map(|c| c.to_string()),
            Some(cast.master.0.to_string())
        );
        assert!(
            tokens
                .verify(&link.token, None, at(window.from_ms - 1000))
                .is_err()
        );
        assert!(
            tokens
                .verify(&link.token, None, at(window.until_ms + 1000))
                .is_err()
        );
        assert!(window.contains(start) && !window.contains(window.until_ms));
    }
}
