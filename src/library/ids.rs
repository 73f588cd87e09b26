//! Ids of library things, shaped like the schedule's (`crate::db::ids`): a prefix and a
//! ULID-like body, so they sort by creation time and are safe in object keys and URLs.

use std::fmt;

use crate::db::ids::{is_valid, ulid_body};

macro_rules! library_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate(now_ms: u64) -> Self {
                Self(format!("{}_{}", $prefix, ulid_body(now_ms)))
            }

            /// Checks the shape of an id from a client: only the prefix, `_` and base32
            /// letters, so no id can name a path outside its own object.
            pub fn parse(s: &str) -> Option<Self> {
                is_valid($prefix, s).then(|| Self(s.to_owned()))
            }

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
    };
}

library_id!(
    /// A library entry: one recorded lesson.
    RecordingId,
    "rec"
);
library_id!(
    /// An observation note.
    NoteId,
    "note"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_anything_path_like() {
        let id = RecordingId::generate(1_764_400_000_000);
        assert_eq!(RecordingId::parse(id.as_str()), Some(id.clone()));
        for bad in [
            "rec_../../etc/passwd",
            "rec_",
            "../rec_01",
            "rec_01jd8x/../x",
            "note_01jd8x0000000000000000000",
            "",
        ] {
            assert_eq!(RecordingId::parse(bad), None, "{bad}");
        }
        assert!(NoteId::generate(5).as_str().starts_with("note_"));
    }
}
