//! Editing a lesson: which of its stored occurrences to keep, move, add or drop.
//!
//! Occurrences are matched to the new plan by their series date. The past is history: an
//! occurrence whose links are already valid (or that was ended) is never touched. Of the rest,
//! an occurrence that was moved or cancelled on its own keeps its own time and state; the
//! others take the new plan's time. Dates no longer in the plan are dropped; new dates are
//! added unless already over. A changed time or cast (teacher, classrooms, mode) gets a new
//! link version: the old links are revoked.

use super::model::OccurrenceStatus;
use super::recurrence::Planned;
use super::store::OccurrenceRow;

/// What to write.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub insert: Vec<Planned>,
    /// Occurrence id, new start, new end, whether to bump the link version.
    pub update: Vec<Update>,
    /// Occurrence ids.
    pub delete: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub bump: bool,
}

/// Whether an occurrence is past editing: ended, or its links already valid (`lead_ms` before
/// its start).
pub fn frozen(o: &OccurrenceRow, now_ms: i64, lead_ms: i64) -> bool {
    o.status() == OccurrenceStatus::Ended || o.starts_at - lead_ms <= now_ms
}

/// The changes that turn `existing` into `plan` at `now_ms`.
pub fn reconcile(
    existing: &[OccurrenceRow],
    plan: &[Planned],
    now_ms: i64,
    lead_ms: i64,
    cast_changed: bool,
) -> Changes {
    let mut changes = Changes::default();
    for o in existing {
        if frozen(o, now_ms, lead_ms) {
            continue;
        }
        let planned = plan
            .iter()
            .find(|p| p.series_date.to_string() == o.series_date);
        match planned {
            None => changes.delete.push(o.id.clone()),
            Some(p) => {
                let on_its_own = o.moved != 0 || o.status() == OccurrenceStatus::Cancelled;
                let (start_ms, end_ms) = if on_its_own {
                    (o.starts_at, o.ends_at)
                } else {
                    (p.start_ms, p.end_ms)
                };
                let moved = (start_ms, end_ms) != (o.starts_at, o.ends_at);
                let bump = moved || (cast_changed && o.status() == OccurrenceStatus::Scheduled);
                if moved || bump {
                    changes.update.push(Update {
                        id: o.id.clone(),
                        start_ms,
                        end_ms,
                        bump,
                    });
                }
            }
        }
    }
    for p in plan {
        let date = p.series_date.to_string();
        if !existing.iter().any(|o| o.series_date == date) && p.end_ms > now_ms {
            changes.insert.push(p.clone());
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::Date;

    const H: i64 = 3_600_000;
    const DAY: i64 = 24 * H;
    const LEAD: i64 = H / 4;

    fn date(day: i8) -> Date {
        Date::new(2026, 3, day).expect("date")
    }

    fn planned(day: i8, hour: i64) -> Planned {
        Planned {
            series_date: date(day),
            start_ms: i64::from(day) * DAY + hour * H,
            end_ms: i64::from(day) * DAY + hour * H + H,
        }
    }

    fn stored(id: &str, p: &Planned, status: &str, moved: bool) -> OccurrenceRow {
        OccurrenceRow {
            id: id.into(),
            lesson_id: "les".into(),
            series_date: p.series_date.to_string(),
            starts_at: p.start_ms,
            ends_at: p.end_ms,
            status: status.into(),
            moved: i16::from(moved),
            link_version: 1,
            ended_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_new_lesson_inserts_what_is_not_over() {
        let plan = [planned(2, 8), planned(9, 8), planned(16, 8)];
        let now = 9 * DAY + 8 * H + H / 2; // during the second one
        let c = reconcile(&[], &plan, now, LEAD, false);
        assert_eq!(c.insert, plan[1..].to_vec());
        assert!(c.update.is_empty() && c.delete.is_empty());
    }

    #[test]
    fn a_new_time_moves_future_occurrences_and_leaves_the_past() {
        let old = [planned(2, 8), planned(9, 8), planned(16, 8)];
        let existing: Vec<_> = old
            .iter()
            .enumerate()
            .map(|(i, p)| stored(&format!("o{i}"), p, "scheduled", false))
            .collect();
        let new = [planned(2, 10), planned(9, 10), planned(16, 10)];
        let now = 5 * DAY;
        let c = reconcile(&existing, &new, now, LEAD, false);
        assert_eq!(
            c.update,
            vec![
                Update {
                    id: "o1".into(),
                    start_ms: new[1].start_ms,
                    end_ms: new[1].end_ms,
                    bump: true
                },
                Update {
                    id: "o2".into(),
                    start_ms: new[2].start_ms,
                    end_ms: new[2].end_ms,
                    bump: true
                },
            ]
        );
        assert!(c.insert.is_empty() && c.delete.is_empty());
    }

    #[test]
    fn occurrences_changed_on_their_own_keep_their_time_and_state() {
        let old = [planned(9, 8), planned(16, 8)];
        let mut moved = stored("moved", &old[0], "scheduled", true);
        moved.starts_at += 2 * H;
        moved.ends_at += 2 * H;
        let cancelled = stored("cancelled", &old[1], "cancelled", false);
        let new = [planned(9, 10), planned(16, 10)];
        let c = reconcile(&[moved.clone(), cancelled], &new, 0, LEAD, false);
        assert_eq!(c, Changes::default());
        // A new teacher revokes the moved one's links, not the cancelled one's.
        let c = reconcile(&[moved.clone()], &new[..1], 0, LEAD, true);
        assert_eq!(
            c.update,
            vec![Update {
                id: "moved".into(),
                start_ms: moved.starts_at,
                end_ms: moved.ends_at,
                bump: true
            }]
        );
    }

    #[test]
    fn dropped_dates_are_deleted_and_new_dates_added() {
        let existing = [stored("a", &planned(9, 8), "scheduled", false)];
        let new = [planned(10, 8), planned(17, 8)];
        let c = reconcile(&existing, &new, 0, LEAD, false);
        assert_eq!(c.delete, vec!["a".to_owned()]);
        assert_eq!(c.insert, new.to_vec());
    }

    #[test]
    fn an_occurrence_whose_links_are_open_is_frozen() {
        let p = planned(9, 8);
        let existing = [stored("live", &p, "scheduled", false)];
        let now = p.start_ms - LEAD; // links just became valid
        let c = reconcile(&existing, &[], now, LEAD, true);
        assert_eq!(c, Changes::default(), "neither deleted nor revoked");
        let ended = [stored("ended", &planned(16, 8), "ended", false)];
        assert_eq!(reconcile(&ended, &[], 0, LEAD, true), Changes::default());
    }

    #[test]
    fn unchanged_plans_change_nothing() {
        let plan = [planned(9, 8), planned(16, 8)];
        let existing: Vec<_> = plan
            .iter()
            .enumerate()
            .map(|(i, p)| stored(&format!("o{i}"), p, "scheduled", false))
            .collect();
        assert_eq!(
            reconcile(&existing, &plan, 0, LEAD, false),
            Changes::default()
        );
    }
}
