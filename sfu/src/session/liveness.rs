//! `Liveness`: whether a peer's connection carries media, and how long a peer is kept when it
//! does not.
//!
//! A peer has until its connect deadline to connect (ICE and DTLS). Once connected, 4 s without
//! a datagram makes it `reconnecting` (others see it so), and it has the grace (30 s) from its
//! last datagram to come back; its signaling connection going away (`detached`) starts the same
//! grace. A connection that replaces one that had media (`carried`, see `Sfu::rejoin`) keeps
//! the peer present from the start, but only for what is left of that grace unless media
//! arrives on it. Pure: every step takes `now` and says what changed; the peer turns that into
//! effects.

use std::time::{Duration, Instant};

/// No datagram for this long marks a connected peer as reconnecting. Browsers send RTCP and
/// consent checks several times a second, so a quiet peer has lost its network.
pub(crate) const SILENCE: Duration = Duration::from_secs(4);

/// How long a peer whose media stopped (or whose signaling dropped) keeps its place: it leaves
/// as `disconnected` when nothing has arrived from it for this long. The one grace of
/// docs/protocol.md §4.3a; a fresh connection that replaces a silent one does not restart it.
pub const GRACE: Duration = Duration::from_secs(30);

/// What a timeout found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Nothing changed.
    Alive,
    /// The peer has gone silent (for this long): it is reconnecting now.
    Silent { silent_ms: u64 },
    /// The peer did not connect in time, or its grace ran out: it is gone.
    Gone,
}

/// What a connection coming up means for the peer's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// Its first connection: the participant is here from now.
    Joined,
    /// A replacement connection of a silent peer: it is back.
    Resumed,
    /// A replacement of a connection that never went silent: nothing to tell.
    Unchanged,
}

#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    pub connected: bool,
    /// Removed if not connected by then.
    pub connect_deadline: Instant,
    /// The last datagram from the peer: silence means its network is gone.
    pub last_rx: Instant,
    /// Its media stopped arriving; it has until `last_rx + grace` to come back.
    pub reconnecting: bool,
    /// Its signaling connection is gone since then; it has the same grace to come back.
    pub detached_since: Option<Instant>,
    pub grace: Duration,
    /// This connection replaces one that had media: the peer is present since then, and its
    /// presence goes on only if media arrives on this one too.
    pub carried: bool,
}

impl Liveness {
    pub fn new(connect_deadline: Instant, now: Instant) -> Self {
        Liveness {
            connected: false,
            connect_deadline,
            last_rx: now,
            reconnecting: false,
            detached_since: None,
            grace: GRACE,
            carried: false,
        }
    }

    /// The liveness of a connection that replaces this one's (`Sfu::rejoin`): it continues
    /// this presence, silent since the last datagram, with what is left of the grace (or of
    /// the first connection's deadline) to carry media.
    pub fn successor(&self, now: Instant, connect_timeout: Duration) -> Liveness {
        let carried = self.connected || self.carried;
        let deadline = if carried {
            (now + connect_timeout).min(self.last_rx + self.grace)
        } else {
            self.connect_deadline
        };
        let mut next = Liveness::new(deadline, now);
        next.carried = carried;
        if carried {
            next.last_rx = self.last_rx;
            next.reconnecting = self.reconnecting;
        }
        next
    }

    /// When the peer must be looked at next for its liveness.
    pub fn deadline(&self) -> Instant {
        if !self.connected {
            // A replacement connection shows its peer reconnecting once silence says so.
            if self.carried && !self.reconnecting {
                return self.connect_deadline.min(self.last_rx + SILENCE);
            }
            return self.connect_deadline;
        }
        let mut t = if self.reconnecting {
            self.last_rx + self.grace
        } else {
            self.last_rx + SILENCE
        };
        if let Some(d) = self.detached_since {
            t = t.min(d + self.grace);
        }
        t
    }

    /// Checks the connect deadline, silence and grace at `now`.
    pub fn check(&mut self, now: Instant) -> Check {
        if !self.connected && now >= self.connect_deadline {
            return Check::Gone;
        }
        // A connection not yet up is bounded by its connect deadline alone, unless it carries
        // on a peer that was present.
        if !self.connected && !self.carried {
            return Check::Alive;
        }
        if self.detached_since.is_some_and(|d| now >= d + self.grace)
            || (self.connected && self.reconnecting && now >= self.last_rx + self.grace)
        {
            return Check::Gone;
        }
        if !self.reconnecting && now >= self.last_rx + SILENCE {
            self.reconnecting = true;
            let silent_ms = u64::try_from((now - self.last_rx).as_millis()).unwrap_or(u64::MAX);
            return Check::Silent { silent_ms };
        }
        Check::Alive
    }

    /// A datagram arrived; true if a silent connected peer is back. Connectivity checks of a
    /// replacement connection are not media yet: it is back when it connects.
    pub fn on_datagram(&mut self, now: Instant) -> bool {
        self.last_rx = now;
        if self.reconnecting && self.connected {
            self.reconnecting = false;
            return true;
        }
        false
    }

    /// The connection is up (ICE and DTLS). Presence means media: a participant counts from
    /// its first connection, and a silent one is back once a replacement carries media.
    pub fn on_connected(&mut self) -> Presence {
        self.connected = true;
        if !self.carried {
            Presence::Joined
        } else if self.reconnecting {
            self.reconnecting = false;
            Presence::Resumed
        } else {
            Presence::Unchanged
        }
    }

    /// The signaling connection went away; true if it had not already.
    pub fn detach(&mut self, now: Instant) -> bool {
        let first = self.detached_since.is_none();
        self.detached_since = Some(now);
        first
    }

    /// The signaling connection is back; true if it had been away.
    pub fn attach(&mut self) -> bool {
        self.detached_since.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_peer_that_never_connects_is_gone_at_its_deadline_only() {
        let t0 = Instant::now();
        let mut l = Liveness::new(ms(t0, 10_000), t0);
        assert_eq!(l.deadline(), ms(t0, 10_000));
        assert_eq!(l.check(ms(t0, 9_999)), Check::Alive);
        assert_eq!(l.check(ms(t0, 10_000)), Check::Gone);
    }

    #[test]
    fn silence_makes_a_peer_reconnecting_and_the_grace_ends_it() {
        let t0 = Instant::now();
        let mut l = Liveness::new(ms(t0, 10_000), t0);
        assert_eq!(l.on_connected(), Presence::Joined);
        assert!(!l.on_datagram(ms(t0, 1_000)));
        assert_eq!(l.deadline(), ms(t0, 5_000));
        assert_eq!(l.check(ms(t0, 4_999)), Check::Alive);
        assert_eq!(l.check(ms(t0, 5_000)), Check::Silent { silent_ms: 4_000 });
        assert!(l.reconnecting);
        assert_eq!(l.deadline(), ms(t0, 31_000));
        assert_eq!(l.check(ms(t0, 30_999)), Check::Alive);
        assert_eq!(l.check(ms(t0, 31_000)), Check::Gone);
    }

    #[test]
    fn media_after_silence_brings_the_peer_back() {
        let t0 = Instant::now();
        let mut l = Liveness::new(ms(t0, 10_000), t0);
        l.on_connected();
        assert!(matches!(l.check(ms(t0, 6_000)), Check::Silent { .. }));
        assert!(l.on_datagram(ms(t0, 7_000)));
        assert!(!l.reconnecting);
        assert_eq!(l.deadline(), ms(t0, 11_000));
    }

    #[test]
    fn a_detached_peer_has_the_grace_from_its_detaching() {
        let t0 = Instant::now();
        let mut l = Liveness::new(ms(t0, 10_000), t0);
        l.on_connected();
        assert!(l.detach(ms(t0, 2_000)));
        assert!(!l.detach(ms(t0, 2_500)), "already detached");
        l.on_datagram(ms(t0, 3_000));
        l.on_datagram(ms(t0, 31_000));
        assert_eq!(l.check(ms(t0, 32_499)), Check::Alive);
        assert_eq!(l.check(ms(t0, 32_500)), Check::Gone);
        let mut back = Liveness::new(ms(t0, 10_000), t0);
        back.on_connected();
        back.detach(ms(t0, 1_000));
        assert!(back.attach());
        assert!(!back.attach());
        back.on_datagram(ms(t0, 40_000));
        assert_eq!(back.check(ms(t0, 40_000)), Check::Alive);
    }

    #[test]
    fn a_replacement_connection_carries_presence_for_what_is_left_of_the_grace() {
        let t0 = Instant::now();
        let mut old = Liveness::new(ms(t0, 10_000), t0);
        old.on_connected();
        old.on_datagram(ms(t0, 1_000));
        assert!(matches!(old.check(ms(t0, 6_000)), Check::Silent { .. }));
        // A new page 20 s later: 10 s of grace are left, less than the connect timeout.
        let mut next = old.successor(ms(t0, 21_000), Duration::from_secs(15));
        assert!(next.carried && next.reconnecting && !next.connected);
        assert_eq!(next.connect_deadline, ms(t0, 31_000));
        // Connectivity checks are not media: still reconnecting.
        assert!(!next.on_datagram(ms(t0, 21_500)));
        assert_eq!(next.on_connected(), Presence::Resumed);
        // A connection that never carried media has only its own deadline.
        let fresh = Liveness::new(ms(t0, 10_000), t0);
        let next = fresh.successor(ms(t0, 5_000), Duration::from_secs(15));
        assert!(!next.carried);
        assert_eq!(next.connect_deadline, ms(t0, 10_000));
    }

    #[test]
    fn a_replacement_of_a_live_connection_shows_silence_before_its_deadline() {
        let t0 = Instant::now();
        let mut old = Liveness::new(ms(t0, 10_000), t0);
        old.on_connected();
        old.on_datagram(ms(t0, 1_000));
        let mut next = old.successor(ms(t0, 2_000), Duration::from_secs(15));
        assert!(next.carried && !next.reconnecting);
        assert_eq!(next.deadline(), ms(t0, 5_000));
        assert_eq!(
            next.check(ms(t0, 5_000)),
            Check::Silent { silent_ms: 4_000 }
        );
        assert_eq!(next.on_connected(), Presence::Resumed);
        let mut quiet = old.successor(ms(t0, 2_000), Duration::from_secs(15));
        assert_eq!(quiet.on_connected(), Presence::Unchanged);
    }
}
