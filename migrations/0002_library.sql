-- The resource library: recorded lessons, their extra per-track files, and the observation
-- notes (听课评课) of master lessons.
--
-- Portable SQL as in 0001: TEXT ids made by the application, BIGINT Unix milliseconds and
-- sizes, SMALLINT flags. Lesson facts are copied into the entry when the recording starts, so
-- an entry stays searchable (and correct) after its lesson is edited or deleted.

CREATE TABLE recordings (
    id             TEXT PRIMARY KEY,
    -- The room recorded; for a scheduled lesson its occurrence id.
    room           TEXT NOT NULL,
    occurrence_id  TEXT,
    lesson_id      TEXT,
    title          TEXT NOT NULL,
    subject        TEXT NOT NULL,
    grade          TEXT NOT NULL,
    -- open, dedicated, master or broadcast
    mode           TEXT NOT NULL,
    teacher_id     TEXT,
    teacher_name   TEXT NOT NULL,
    school_id      TEXT,
    school_name    TEXT NOT NULL,
    -- The lesson's time zone, for showing the date.
    timezone       TEXT NOT NULL,
    started_at     BIGINT NOT NULL,
    -- recording (running), ready (in the library) or failed (nothing playable kept)
    state          TEXT NOT NULL,
    -- Why a recording stopped on an error (disk full, ...), also when what was kept is ready.
    error          TEXT,
    recovered      SMALLINT NOT NULL,
    duration_ms    BIGINT,
    bytes          BIGINT,
    sha256         TEXT,
    -- The file in the library store, once ready.
    object_key     TEXT,
    -- The file the recorder writes while running (`…webm.part`), to match its end.
    local_path     TEXT,
    -- The server recording it (host and recordings directory): at start a server marks only
    -- its own unfinished entries as lost, never those another server is recording.
    node           TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX recordings_started ON recordings (started_at);
CREATE INDEX recordings_room ON recordings (room);
CREATE INDEX recordings_state ON recordings (state);

-- Every published track as its own file (`recording.per_track`).
CREATE TABLE recording_tracks (
    recording_id  TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    -- `t3-video`, `t5-audio`: the source track and its kind
    source        TEXT NOT NULL,
    object_key    TEXT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    bytes         BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    PRIMARY KEY (recording_id, source)
);

-- Observation notes: posted during the live lesson (over signaling) or while replaying.
CREATE TABLE recording_notes (
    id            TEXT PRIMARY KEY,
    recording_id  TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    -- Milliseconds from the start of the recording.
    at_ms         BIGINT NOT NULL,
    author        TEXT NOT NULL,
    -- teacher, observer (live), link (a library link's holder) or admin
    role          TEXT NOT NULL,
    text          TEXT NOT NULL,
    -- live or replay
    via           TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX recording_notes_recording ON recording_notes (recording_id, at_ms);
