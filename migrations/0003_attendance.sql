-- Attendance of lesson occurrences: each stay of the teacher or a classroom in the room, and
-- each turn on stage (src/attendance).
--
-- Portable SQL as in 0001: TEXT keys, BIGINT Unix milliseconds, SMALLINT flags. A record's
-- key is (occurrence, participant, start), so the server's writes are idempotent upserts. The
-- participant is an identity (`classroom:{id}`, `teacher:{name}`), not a peer: several links
-- or reconnections of one classroom are one presence. Attendance is part of its occurrence
-- and goes with it.

CREATE TABLE attendance_intervals (
    occurrence_id  TEXT NOT NULL REFERENCES occurrences (id) ON DELETE CASCADE,
    participant    TEXT NOT NULL,
    joined_at      BIGINT NOT NULL,
    -- teacher or classroom
    role           TEXT NOT NULL,
    -- The name the room showed.
    name           TEXT NOT NULL,
    classroom_id   TEXT,
    -- NULL while the participant stays.
    left_at        BIGINT,
    -- left, disconnected, removed, roomClosed, shutdown, internal or lost (server gone)
    end_reason     TEXT,
    -- Connection losses recovered from during the stay.
    reconnects     INTEGER NOT NULL,
    -- Refreshed while the stay is open: a stay whose server crashed ended about then.
    last_seen_at   BIGINT NOT NULL,
    PRIMARY KEY (occurrence_id, participant, joined_at)
);
-- Open stays, for the heartbeat and the sweep after a crash.
CREATE INDEX attendance_intervals_open ON attendance_intervals (last_seen_at)
    WHERE left_at IS NULL;

CREATE TABLE attendance_calls (
    occurrence_id  TEXT NOT NULL REFERENCES occurrences (id) ON DELETE CASCADE,
    participant    TEXT NOT NULL,
    called_at      BIGINT NOT NULL,
    -- 1 when picked by the random roll call.
    roll_call      SMALLINT NOT NULL,
    -- NULL while on stage.
    ended_at       BIGINT,
    PRIMARY KEY (occurrence_id, participant, called_at)
);
