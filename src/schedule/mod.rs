//! Scheduling lessons: schools' classrooms and teachers meet in lessons, a lesson meets in
//! occurrences, and each occurrence is a room that follows its time window.
//!
//! The policy lives in small pure parts, each tested step by step: [`recurrence`] expands a
//! weekly lesson into occurrences (in its time zone), [`conflict`] finds double bookings,
//! [`reconcile`] decides what an edit does to stored occurrences, [`links`] says who gets which
//! room link, and [`scheduler`] decides when live rooms are warned and closed. [`store`] holds
//! the queries, [`runner`] drives the scheduler from the database every `schedule.tick`.

pub mod conflict;
pub mod links;
pub mod model;
pub mod network;
pub mod reconcile;
pub mod recurrence;
pub mod runner;
pub mod scheduler;
pub mod store;
pub mod time;
