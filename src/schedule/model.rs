//! The words of the schedule: kinds of school, lesson modes, weekdays, occurrence states, and
//! the bandwidth plan's defaults.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What kind of school, which sets its classrooms' default bandwidth (the city plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SchoolKind {
    /// 乡村学校: 5 Mbit/s per classroom.
    Rural,
    /// 城区中心学校: 10 Mbit/s.
    Central,
    /// 高中: 15 Mbit/s.
    High,
    /// 职业学校: 10 Mbit/s (like a central school: one camera classroom per lesson).
    Vocational,
    /// 幼儿园: 5 Mbit/s.
    Kindergarten,
    /// 特殊教育学校: 10 Mbit/s (interpreters and close-up cameras need more than rural).
    Special,
}

impl SchoolKind {
    pub const ALL: [SchoolKind; 6] = [
        SchoolKind::Rural,
        SchoolKind::Central,
        SchoolKind::High,
        SchoolKind::Vocational,
        SchoolKind::Kindergarten,
        SchoolKind::Special,
    ];

    /// Default downlink per classroom, kbit/s.
    pub fn default_downlink_kbps(self) -> i32 {
        match self {
            SchoolKind::Rural | SchoolKind::Kindergarten => 5_000,
            SchoolKind::Central | SchoolKind::Vocational | SchoolKind::Special => 10_000,
            SchoolKind::High => 15_000,
        }
    }

    /// Default uplink per classroom, kbit/s: half the downlink, which still carries a 720p
    /// camera (2.5 Mbit/s) on the smallest plan.
    pub fn default_uplink_kbps(self) -> i32 {
        self.default_downlink_kbps() / 2
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SchoolKind::Rural => "rural",
            SchoolKind::Central => "central",
            SchoolKind::High => "high",
            SchoolKind::Vocational => "vocational",
            SchoolKind::Kindergarten => "kindergarten",
            SchoolKind::Special => "special",
        }
    }
}

/// The three classrooms (三个课堂).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LessonMode {
    /// 专递课堂: the teacher's class and remote classrooms see and hear each other.
    Dedicated,
    /// 名师课堂: a master teacher's lesson, joined by classrooms and watched by observers.
    Master,
    /// 名校网络课堂: a lesson broadcast to viewers.
    Broadcast,
}

impl LessonMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LessonMode::Dedicated => "dedicated",
            LessonMode::Master => "master",
            LessonMode::Broadcast => "broadcast",
        }
    }
}

/// A day of the week, as recurrences name them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }

    pub fn from_jiff(w: jiff::civil::Weekday) -> Weekday {
        use jiff::civil::Weekday as J;
        match w {
            J::Monday => Weekday::Mon,
            J::Tuesday => Weekday::Tue,
            J::Wednesday => Weekday::Wed,
            J::Thursday => Weekday::Thu,
            J::Friday => Weekday::Fri,
            J::Saturday => Weekday::Sat,
            J::Sunday => Weekday::Sun,
        }
    }
}

/// Where an occurrence stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OccurrenceStatus {
    /// Will take (or is taking, or took) place.
    Scheduled,
    /// Called off: links are refused and a live room closes.
    Cancelled,
    /// Ended early by an admin: links are refused and the room closed.
    Ended,
}

impl OccurrenceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OccurrenceStatus::Scheduled => "scheduled",
            OccurrenceStatus::Cancelled => "cancelled",
            OccurrenceStatus::Ended => "ended",
        }
    }
}

/// A stored word that is not one of ours (a database edited by hand, or a newer version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownWord(pub String);

macro_rules! from_str_via_as_str {
    ($ty:ty, [$($v:expr),+ $(,)?]) => {
        impl FromStr for $ty {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                [$($v),+]
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownWord(s.to_owned()))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

from_str_via_as_str!(
    SchoolKind,
    [
        SchoolKind::Rural,
        SchoolKind::Central,
        SchoolKind::High,
        SchoolKind::Vocational,
        SchoolKind::Kindergarten,
        SchoolKind::Special,
    ]
);
from_str_via_as_str!(
    LessonMode,
    [
        LessonMode::Dedicated,
        LessonMode::Master,
        LessonMode::Broadcast
    ]
);
from_str_via_as_str!(
    Weekday,
    [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]
);
from_str_via_as_str!(
    OccurrenceStatus,
    [
        OccurrenceStatus::Scheduled,
        OccurrenceStatus::Cancelled,
        OccurrenceStatus::Ended,
    ]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_city_plan_sets_default_bandwidth_by_kind() {
        let plan: Vec<(SchoolKind, i32, i32)> = SchoolKind::ALL
            .iter()
            .map(|k| (*k, k.default_downlink_kbps(), k.default_uplink_kbps()))
            .collect();
        assert_eq!(
            plan,
            vec![
                (SchoolKind::Rural, 5000, 2500),
                (SchoolKind::Central, 10000, 5000),
                (SchoolKind::High, 15000, 7500),
                (SchoolKind::Vocational, 10000, 5000),
                (SchoolKind::Kindergarten, 5000, 2500),
                (SchoolKind::Special, 10000, 5000),
            ]
        );
    }

    #[test]
    fn words_round_trip_through_their_stored_form() {
        for k in SchoolKind::ALL {
            assert_eq!(k.as_str().parse::<SchoolKind>(), Ok(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!("broadcast".parse(), Ok(LessonMode::Broadcast));
        assert_eq!("sun".parse(), Ok(Weekday::Sun));
        assert_eq!("ended".parse(), Ok(OccurrenceStatus::Ended));
        assert_eq!(
            "Monday".parse::<Weekday>(),
            Err(UnknownWord("Monday".into()))
        );
    }
}
