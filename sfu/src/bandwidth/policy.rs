//! `BwePolicy`: which subscribers get str0m's send-side bandwidth estimation, and which adapt
//! to their own receiver reports.
//!
//! Send-side estimation (TWCC feedback, probing, padding, the leaky-bucket pacer) tracks a link
//! closely, and the people who run and take part in a lesson need that: the teacher, the
//! classrooms, and the few observers and viewers of a small room. Its price is per packet:
//! with BWE on, str0m's pacer releases one packet per timeout round and asks for another round
//! at once, so every forwarded packet costs two passes through the subscriber's `Rtc`
//! (shared/design/str0m-pacer notes, docs/benchmarks.md). A broadcast audience of hundreds pays
//! that hundreds of times per packet for a precision it does not need: it watches one picture
//! and can take a step down.
//!
//! So an audience peer (viewer or observer) that joins a room already holding
//! `audience_bwe_below` audience peers or more is served as a receiver without TWCC is: no
//! estimator and no pacer (str0m's null pacer sends whatever is written in the same round), its
//! layer following its REMB where it sends one, else the loss it and TWCC report and the round
//! trip (`ReceiverEstimate`: down fast on sustained loss, up in timed steps with back-off),
//! always within its caps. The choice is made once, when the peer's connection is built: a
//! peer keeps it for that connection.

use crate::lesson::role::Role;
use crate::session::sdp::Feedback;

/// Who gets send-side estimation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BwePolicy {
    /// Audience peers joining a room that holds at least this many audience peers already
    /// adapt to their receiver reports instead (0: every audience peer does).
    pub audience_bwe_below: usize,
}

impl Default for BwePolicy {
    fn default() -> Self {
        BwePolicy {
            audience_bwe_below: 20,
        }
    }
}

impl BwePolicy {
    /// How a peer of `role`, whose offer negotiated `offered`, is adapted to, joining a room
    /// that holds `audience` viewers and observers.
    pub fn feedback(&self, role: Role, offered: Feedback, audience: usize) -> Feedback {
        match (offered, role) {
            // Without TWCC there is nothing to estimate with.
            (Feedback::Reports, _) => Feedback::Reports,
            (Feedback::Twcc, Role::Viewer | Role::Observer)
                if audience >= self.audience_bwe_below =>
            {
                Feedback::Reports
            }
            (Feedback::Twcc, _) => Feedback::Twcc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lesson_s_own_peers_always_get_the_estimator() {
        let p = BwePolicy {
            audience_bwe_below: 0,
        };
        for role in [Role::Teacher, Role::Classroom] {
            assert_eq!(p.feedback(role, Feedback::Twcc, 500), Feedback::Twcc);
        }
    }

    #[test]
    fn a_small_audience_gets_it_a_large_one_adapts_to_its_reports() {
        let p = BwePolicy {
            audience_bwe_below: 20,
        };
        for role in [Role::Viewer, Role::Observer] {
            assert_eq!(p.feedback(role, Feedback::Twcc, 0), Feedback::Twcc);
            assert_eq!(p.feedback(role, Feedback::Twcc, 19), Feedback::Twcc);
            assert_eq!(p.feedback(role, Feedback::Twcc, 20), Feedback::Reports);
            assert_eq!(p.feedback(role, Feedback::Twcc, 400), Feedback::Reports);
        }
    }

    #[test]
    fn a_receiver_without_twcc_adapts_to_its_reports_whatever_its_role() {
        let p = BwePolicy::default();
        for role in [Role::Teacher, Role::Classroom, Role::Viewer, Role::Observer] {
            assert_eq!(p.feedback(role, Feedback::Reports, 0), Feedback::Reports);
        }
    }
}
