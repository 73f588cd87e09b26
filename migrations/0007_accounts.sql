-- Admin accounts (等级保护 level 3): named people with a role, argon2id passwords, a TOTP
-- second factor, lockout after failed sign-ins; their sessions; a role on every API key; the
-- audit log's source address and its HMAC chain.

CREATE TABLE admin_users (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    -- system, security or audit
    role           TEXT NOT NULL,
    -- PHC string ($argon2id$...)
    password_hash  TEXT NOT NULL,
    -- 1 while the password is the one-time password `ketang admin create-user` printed
    must_change    SMALLINT NOT NULL,
    -- base32 TOTP secret once enrolled; the pending one while enrolling
    totp_secret    TEXT,
    totp_pending   TEXT,
    -- the last TOTP time step accepted: a code is good once
    totp_last_step BIGINT NOT NULL,
    failures       INTEGER NOT NULL,
    locked_until   BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    disabled_at    BIGINT
);

CREATE TABLE admin_sessions (
    -- hex SHA-256 of the session cookie; the cookie itself is never stored
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    -- the CSRF token the page must echo in X-CSRF-Token
    csrf        TEXT NOT NULL,
    -- 1 once the second factor was given (0: only TOTP enrolment is allowed)
    full_access SMALLINT NOT NULL,
    created_at  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL
);
CREATE INDEX admin_sessions_user ON admin_sessions (user_id);

-- Keys made before roles existed keep doing everything they did: role `all`.
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'all';

-- Where the request came from, and the chain: `seq` orders sealed rows, `mac` is
-- HMAC-SHA256(server audit key, previous mac || this row); NULL until sealed.
ALTER TABLE audit ADD COLUMN source TEXT;
ALTER TABLE audit ADD COLUMN seq BIGINT;
ALTER TABLE audit ADD COLUMN mac TEXT;
CREATE INDEX audit_seq ON audit (seq);

-- One row: the chain's head (the last sealed row), and where a purge cut it.
CREATE TABLE audit_chain (
    id          INTEGER PRIMARY KEY,
    seq         BIGINT NOT NULL,
    mac         TEXT NOT NULL,
    purged_seq  BIGINT NOT NULL,
    purged_mac  TEXT NOT NULL
);
INSERT INTO audit_chain (id, seq, mac, purged_seq, purged_mac) VALUES (1, 0, '', 0, '');
