//! Newtype identifiers. Plain strings and integers never cross an API boundary: a `PeerId`
//! cannot be passed where a `TrackId` is expected.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Why an id string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-' (got {got:?})")]
pub struct InvalidId {
    what: &'static str,
    got: String,
}

fn check_slug(what: &'static str, s: &str) -> Result<(), InvalidId> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        let mut got: String = s.chars().take(80).collect();
        if s.chars().count() > 80 {
            got.push('…');
        }
        Err(InvalidId { what, got })
    }
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates and wraps an id: 1–64 characters of `[A-Za-z0-9_-]`.
            pub fn new(s: &str) -> Result<Self, InvalidId> {
                check_slug($what, s)?;
                Ok(Self(Arc::from(s)))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

slug_id!(
    /// A room: one live lesson. Every peer of a room lives on the same shard.
    RoomId,
    "room id"
);

slug_id!(
    /// A classroom (a physical room in a school), as named by the scheduling side.
    ClassroomId,
    "classroom id"
);

macro_rules! num_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }
    };
}

num_id!(
    /// One participant connection (a browser page, a WHIP encoder, a WHEP player). Allocated
    /// by the application so that it can route events before the peer reaches a shard.
    PeerId,
    "p"
);

num_id!(
    /// One published track (a microphone, a camera, a screen). Unique per shard.
    TrackId,
    "t"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_ids_accept_the_documented_alphabet_only() {
        assert!(RoomId::new("math-101_A").is_ok());
        assert!(RoomId::new("").is_err());
        assert!(RoomId::new(&"a".repeat(64)).is_ok());
        assert!(RoomId::new(&"a".repeat(65)).is_err());
        assert!(RoomId::new("../etc").is_err());
        assert!(RoomId::new("数学").is_err());
        let err = ClassroomId::new("a b").unwrap_err().to_string();
        assert!(err.contains("classroom id"), "{err}");
    }

    #[test]
    fn ids_round_trip_through_json() {
        let room: RoomId = serde_json::from_str("\"r-1\"").unwrap();
        assert_eq!(room.as_str(), "r-1");
        assert!(serde_json::from_str::<RoomId>("\"r 1\"").is_err());
        assert_eq!(serde_json::to_string(&PeerId(7)).unwrap(), "7");
        assert_eq!(PeerId(7).to_string(), "p7");
    }
}
