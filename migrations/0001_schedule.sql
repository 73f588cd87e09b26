-- Scheduling: schools, classrooms, teachers, lessons and their occurrences, admin API keys and
-- the audit log.
--
-- One file for SQLite and PostgreSQL alike, so only portable SQL: TEXT primary keys made by
-- the application (prefix + ULID), times as BIGINT Unix milliseconds, flags as SMALLINT 0/1,
-- kbit/s as INTEGER, no AUTOINCREMENT/SERIAL, no engine-specific types.

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    -- hex SHA-256 of the key; the key itself is shown once and never stored.
    hash        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE schools (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    district       TEXT NOT NULL,
    kind           TEXT NOT NULL,
    -- Per-classroom defaults; NULL means the default of the school's kind.
    downlink_kbps  INTEGER,
    uplink_kbps    INTEGER,
    -- Shared by the school's classrooms that are live at the same time; NULL means no cap.
    budget_kbps    INTEGER,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE classrooms (
    id             TEXT PRIMARY KEY,
    school_id      TEXT NOT NULL REFERENCES schools (id),
    name           TEXT NOT NULL,
    -- NULL means the school's value.
    downlink_kbps  INTEGER,
    uplink_kbps    INTEGER,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX classrooms_school ON classrooms (school_id);

CREATE TABLE teachers (
    id          TEXT PRIMARY KEY,
    school_id   TEXT NOT NULL REFERENCES schools (id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX teachers_school ON teachers (school_id);

CREATE TABLE lessons (
    id                   TEXT PRIMARY KEY,
    title                TEXT NOT NULL,
    subject              TEXT NOT NULL,
    grade                TEXT NOT NULL,
    mode                 TEXT NOT NULL,
    teacher_id           TEXT NOT NULL REFERENCES teachers (id),
    master_classroom_id  TEXT NOT NULL REFERENCES classrooms (id),
    -- The first occurrence as entered; a series repeats its local time of day.
    starts_at            BIGINT NOT NULL,
    ends_at              BIGINT NOT NULL,
    timezone             TEXT NOT NULL,
    record               SMALLINT NOT NULL,
    -- Weekly recurrence: comma-separated weekdays ("mon,wed") and the last date (YYYY-MM-DD),
    -- both NULL for a single lesson.
    recur_weekdays       TEXT,
    recur_until          TEXT,
    cancelled_at         BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX lessons_teacher ON lessons (teacher_id);
CREATE INDEX lessons_master ON lessons (master_classroom_id);

-- The remote classrooms of a lesson (dedicated and master modes).
CREATE TABLE lesson_classrooms (
    lesson_id     TEXT NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    classroom_id  TEXT NOT NULL REFERENCES classrooms (id),
    position      INTEGER NOT NULL,
    PRIMARY KEY (lesson_id, classroom_id)
);
CREATE INDEX lesson_classrooms_classroom ON lesson_classrooms (classroom_id);

-- One meeting of a lesson; its id is also the room id of the meeting.
CREATE TABLE occurrences (
    id            TEXT PRIMARY KEY,
    lesson_id     TEXT NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    -- The series date (YYYY-MM-DD, lesson time zone) it was made for; kept when it is moved.
    series_date   TEXT NOT NULL,
    starts_at     BIGINT NOT NULL,
    ends_at       BIGINT NOT NULL,
    -- scheduled, cancelled or ended
    status        TEXT NOT NULL,
    -- 1 when moved on its own: series edits leave it alone.
    moved         SMALLINT NOT NULL,
    -- In every link token; reissuing links increments it, revoking older links.
    link_version  INTEGER NOT NULL,
    ended_at      BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (lesson_id, series_date)
);
CREATE INDEX occurrences_time ON occurrences (starts_at, ends_at);

CREATE TABLE audit (
    id        TEXT PRIMARY KEY,
    at        BIGINT NOT NULL,
    key_id    TEXT NOT NULL,
    key_name  TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    -- JSON text, or NULL
    detail    TEXT
);
CREATE INDEX audit_target ON audit (target);

-- One row. Schedule writes update it first, which serialises them on every engine (a row lock
-- in PostgreSQL, the write lock in SQLite), so two admins cannot book the same classroom at
-- once through a race between the conflict check and the insert.
CREATE TABLE schedule_lock (
    id       INTEGER PRIMARY KEY,
    version  BIGINT NOT NULL
);
INSERT INTO schedule_lock (id, version) VALUES (1, 0);
