-- The OpenID provider (issue 23; DESIGN §10): its clients, pushed authorization requests,
-- codes, tokens, remembered consents, and the one-time values it has seen (client assertions'
-- and DPoP proofs' `jti`). What a code or token stands for is a JSON `domain::oidc::Grant`;
-- a client is a JSON `domain::oidc::ClientRecord`: both grow without a migration.
CREATE TABLE oidc_clients (
    client_id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    removed_at BIGINT
);
CREATE TABLE oidc_requests (
    id_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    params TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX oidc_requests_expiry ON oidc_requests (expires_at);
CREATE TABLE oidc_codes (
    code_hash TEXT PRIMARY KEY,
    grant_data TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX oidc_codes_expiry ON oidc_codes (expires_at);
-- `family`: every token of one grant (a code's exchange and the refreshes after it), revoked
-- together when a rotated refresh token comes back. `used_at`: a refresh token rotated.
CREATE TABLE oidc_tokens (
    token_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    code_hash TEXT,
    family TEXT NOT NULL,
    sid TEXT NOT NULL,
    grant_data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX oidc_tokens_code ON oidc_tokens (code_hash);
CREATE INDEX oidc_tokens_family ON oidc_tokens (family);
CREATE INDEX oidc_tokens_sid ON oidc_tokens (sid);
CREATE INDEX oidc_tokens_user_client ON oidc_tokens (user_id, client_id);
CREATE INDEX oidc_tokens_expiry ON oidc_tokens (expires_at);
CREATE TABLE oidc_consents (
    user_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE TABLE oidc_seen (
    key_hash TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_seen_expiry ON oidc_seen (expires_at);
-- CIBA requests (OpenID Connect CIBA Core 1.0): the service's request for a citizen named by
-- `login_hint` (hashed, so that one pending request per citizen and service holds for unknown
-- addresses too), the ConsentID request made for it (none for an unknown address), and when it
-- was closed: its tokens issued, or its refusal or end told to the client.
CREATE TABLE oidc_ciba (
    id_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    hint_hash TEXT NOT NULL,
    txn_id TEXT,
    grant_data TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    next_poll_at BIGINT NOT NULL,
    closed_at BIGINT
);
CREATE INDEX oidc_ciba_hint ON oidc_ciba (hint_hash, client_id);
CREATE INDEX oidc_ciba_expiry ON oidc_ciba (expires_at);
-- Back-channel logouts to deliver (OpenID Connect Back-Channel Logout 1.0): one per client and
-- portal session (`sid`) that ended, retried with backoff until delivered or given up.
CREATE TABLE oidc_logouts (
    client_id TEXT NOT NULL,
    sid TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    given_up_at BIGINT,
    last_error TEXT,
    PRIMARY KEY (client_id, sid)
);
CREATE INDEX oidc_logouts_due ON oidc_logouts (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
