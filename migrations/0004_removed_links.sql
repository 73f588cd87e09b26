-- Room links removed from their room (issue 13): a removal binds the link (the token's `jti`)
-- until the link expires or the teacher re-admits it, across the room emptying and server
-- restarts (src/removal.rs). Not tied to an occurrence: ad-hoc rooms have none.

CREATE TABLE removed_links (
    room        TEXT NOT NULL,
    link        TEXT NOT NULL,
    -- The peer id it had when removed (how the teacher's page re-admits it).
    peer_id     BIGINT NOT NULL,
    name        TEXT NOT NULL,
    removed_at  BIGINT NOT NULL,
    -- The link's expiry, Unix milliseconds: the row is useless afterwards.
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (room, link)
);
CREATE INDEX removed_links_expiry ON removed_links (expires_at);
