//! Ids of stored things: a short prefix naming the kind and a ULID-like body (48-bit Unix
//! milliseconds + 80 random bits, Crockford base32, lower case), e.g. `sch_01jd8x…`.
//!
//! The application makes them, not the database, so that SQLite and PostgreSQL need no
//! sequences; they sort by creation time, and they are valid room ids (`[A-Za-z0-9_-]`),
//! which is why an occurrence id doubles as the room id of its meeting.

use std::fmt;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Characters of the ULID part.
pub const BODY_LEN: usize = 26;

/// The last id value made by this process: ids made in the same millisecond (a lesson's
/// occurrences, an audit entry right after another) still sort in the order they were made.
static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);

/// A fresh id body for `now_ms`, greater than every earlier one of this process.
pub fn ulid_body(now_ms: u64) -> String {
    let random: u128 = rand::random::<u128>() & ((1u128 << 80) - 1);
    let mut value = (u128::from(now_ms & ((1 << 48) - 1)) << 80) | random;
    if let Ok(mut last) = LAST.lock() {
        if value <= *last {
            // Same millisecond (or a clock step back): one more than the last, keeping the
            // random bits' uniqueness across processes as far as 80 bits allow.
            value = *last + 1;
        }
        *last = value;
    }
    (0..BODY_LEN)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// Whether `s` is `prefix` + `_` + a ULID body.
pub fn is_valid(prefix: &str, s: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|body| body.len() == BODY_LEN && body.bytes().all(|b| ALPHABET.contains(&b)))
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix of every id of this kind.
            pub const PREFIX: &'static str = $prefix;

            /// A new id made at `now_ms`.
            pub fn generate(now_ms: u64) -> Self {
                Self(format!("{}_{}", $prefix, ulid_body(now_ms)))
            }

            /// Checks the shape of an id given by a client.
            pub fn parse(s: &str) -> Option<Self> {
                is_valid($prefix, s).then(|| Self(s.to_owned()))
            }

            /// Wraps an id read from the database (it was valid when written).
            pub fn from_db(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A school.
    SchoolId,
    "sch"
);
id_type!(
    /// A classroom of a school (also the `classroom` claim of its room links).
    ClassroomId,
    "cls"
);
id_type!(
    /// A teacher.
    TeacherId,
    "tch"
);
id_type!(
    /// A lesson: one meeting or a weekly series.
    LessonId,
    "les"
);
id_type!(
    /// One meeting of a lesson; also the id of its room.
    OccurrenceId,
    "occ"
);
id_type!(
    /// An admin API key.
    ApiKeyId,
    "key"
);
id_type!(
    /// An admin account (a person who signs in).
    UserId,
    "usr"
);
id_type!(
    /// An audit log entry.
    AuditId,
    "aud"
);

impl OccurrenceId {
    /// The room the occurrence meets in. Ids made here always are room ids; an id read from a
    /// hand-edited database might not be.
    pub fn room(&self) -> Result<ketang_sfu::RoomId, ketang_sfu::InvalidId> {
        ketang_sfu::RoomId::new(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_prefix_sort_by_time_and_are_room_ids() {
        let a = OccurrenceId::generate(1_764_400_000_000);
        let b = OccurrenceId::generate(1_764_400_000_001);
        assert!(a.as_str().starts_with("occ_"), "{a}");
        assert_eq!(a.as_str().len(), 4 + BODY_LEN);
        assert!(a < b, "{a} < {b}");
        assert_eq!(a.room().map(|r| r.to_string()), Ok(a.to_string()));
        assert_ne!(SchoolId::generate(5), SchoolId::generate(5));
        let same_ms: Vec<AuditId> = (0..100).map(|_| AuditId::generate(7)).collect();
        assert!(
            same_ms.windows(2).all(|w| w[0] < w[1]),
            "made in order, sorted in order"
        );
    }

    #[test]
    fn parse_checks_prefix_alphabet_and_length() {
        let id = SchoolId::generate(42);
        assert_eq!(SchoolId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(TeacherId::parse(id.as_str()), None, "wrong prefix");
        assert_eq!(SchoolId::parse("sch_"), None);
        assert_eq!(SchoolId::parse(&format!("{id}0")), None, "too long");
        assert_eq!(
            SchoolId::parse(&id.as_str().to_uppercase()),
            None,
            "lower case only"
        );
        assert_eq!(
            SchoolId::parse("sch_0000000000000000000000000u"),
            None,
            "u is not base32"
        );
        assert_eq!(SchoolId::parse("sch-00000000000000000000000000"), None);
    }
}
