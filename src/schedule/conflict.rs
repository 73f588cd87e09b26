//! Double bookings: a teacher or a classroom in two occurrences that overlap in time.
//!
//! Windows are half-open (`[start, end)`), so a lesson ending at 09:00 and the next starting at
//! 09:00 do not conflict. Cancelled occurrences are never passed in; an ended occurrence
//! occupies its resources only until it was ended.

use crate::db::ids::{ClassroomId, LessonId, OccurrenceId, TeacherId};

/// What is booked twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Teacher(TeacherId),
    Classroom(ClassroomId),
}

/// An existing occurrence and what it occupies.
#[derive(Debug, Clone)]
pub struct Booking {
    pub occurrence: OccurrenceId,
    pub lesson: LessonId,
    pub lesson_title: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub teacher: TeacherId,
    /// The master classroom and the remote classrooms.
    pub classrooms: Vec<ClassroomId>,
}

/// A proposed window for the lesson being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// One clash between a proposed window and an existing booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub resource: Resource,
    pub window: Window,
    pub other_occurrence: OccurrenceId,
    pub other_lesson: LessonId,
    pub other_title: String,
    pub other_start_ms: i64,
    pub other_end_ms: i64,
}

/// The clashes of `windows` (for `teacher` in `classrooms`) with `existing`, in time order, at
/// most `limit` of them.
pub fn find(
    windows: &[Window],
    teacher: &TeacherId,
    classrooms: &[ClassroomId],
    existing: &[Booking],
    limit: usize,
) -> Vec<Conflict> {
    let mut sorted: Vec<&Booking> = existing.iter().collect();
    sorted.sort_by_key(|b| b.start_ms);
    let mut windows = windows.to_vec();
    windows.sort_by_key(|w| w.start_ms);
    let mut out = Vec::new();
    for w in &windows {
        // Only bookings starting before this window ends can overlap it.
        let candidates = &sorted[..sorted.partition_point(|b| b.start_ms < w.end_ms)];
        for b in candidates.iter().filter(|b| b.end_ms > w.start_ms) {
            let resource = if b.teacher == *teacher {
                Some(Resource::Teacher(teacher.clone()))
            } else {
                classrooms
                    .iter()
                    .find(|c| b.classrooms.contains(c))
                    .map(|c| Resource::Classroom(c.clone()))
            };
            if let Some(resource) = resource {
                out.push(Conflict {
                    resource,
                    window: *w,
                    other_occurrence: b.occurrence.clone(),
                    other_lesson: b.lesson.clone(),
                    other_title: b.lesson_title.clone(),
                    other_start_ms: b.start_ms,
                    other_end_ms: b.end_ms,
                });
                if out.len() >= limit {
                    return out;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn booking(
        n: u64,
        start_h: i64,
        end_h: i64,
        teacher: &TeacherId,
        rooms: &[&ClassroomId],
    ) -> Booking {
        Booking {
            occurrence: OccurrenceId::generate(n),
            lesson: LessonId::generate(n),
            lesson_title: format!("lesson {n}"),
            start_ms: start_h * H,
            end_ms: end_h * H,
            teacher: teacher.clone(),
            classrooms: rooms.iter().map(|c| (*c).clone()).collect(),
        }
    }

    fn w(start_h: i64, end_h: i64) -> Window {
        Window {
            start_ms: start_h * H,
            end_ms: end_h * H,
        }
    }

    #[test]
    fn the_same_teacher_at_overlapping_times_conflicts() {
        let li = TeacherId::generate(1);
        let wang = TeacherId::generate(2);
        let (a, b) = (ClassroomId::generate(1), ClassroomId::generate(2));
        let existing = [booking(1, 8, 9, &li, &[&a])];
        let found = find(&[w(8, 10)], &li, std::slice::from_ref(&b), &existing, 10);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].resource, Resource::Teacher(li.clone()));
        assert_eq!(found[0].other_title, "lesson 1");
        assert!(find(&[w(8, 10)], &wang, &[b], &existing, 10).is_empty());
    }

    #[test]
    fn a_shared_classroom_conflicts_and_is_named() {
        let (li, wang) = (TeacherId::generate(1), TeacherId::generate(2));
        let (a, b, c) = (
            ClassroomId::generate(1),
            ClassroomId::generate(2),
            ClassroomId::generate(3),
        );
        let existing = [booking(1, 8, 9, &li, &[&a, &b])];
        let found = find(&[w(7, 9)], &wang, &[c.clone(), b.clone()], &existing, 10);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].resource, Resource::Classroom(b));
        assert!(find(&[w(7, 9)], &wang, &[c], &existing, 10).is_empty());
    }

    #[test]
    fn touching_windows_do_not_conflict() {
        let li = TeacherId::generate(1);
        let existing = [booking(1, 8, 9, &li, &[])];
        assert!(find(&[w(9, 10), w(7, 8)], &li, &[], &existing, 10).is_empty());
        assert_eq!(find(&[w(7, 8), w(8, 9)], &li, &[], &existing, 10).len(), 1);
    }

    #[test]
    fn every_clash_of_a_series_is_found_up_to_the_limit() {
        let li = TeacherId::generate(1);
        let existing: Vec<Booking> = (0..5)
            .map(|d| booking(d, 24 * d as i64 + 8, 24 * d as i64 + 9, &li, &[]))
            .collect();
        let series: Vec<Window> = (0..5).map(|d| w(24 * d + 8, 24 * d + 9)).collect();
        let all = find(&series, &li, &[], &existing, 10);
        assert_eq!(all.len(), 5);
        assert!(
            all.windows(2)
                .all(|p| p[0].window.start_ms < p[1].window.start_ms)
        );
        assert_eq!(find(&series, &li, &[], &existing, 2).len(), 2);
        // A long booking that started before the window still overlaps it.
        let long = [booking(9, 0, 12, &li, &[])];
        assert_eq!(find(&[w(10, 11)], &li, &[], &long, 10).len(), 1);
    }
}
