-- Remote signing (DESIGN §6): bearer tokens of the CSC API and signature authorisations.
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

-- One authorisation per ConsentID sign request: the exact hashes the user approved for one
-- credential. Approved, it yields a SAD (only its hash is kept) that one signing call spends.
CREATE TABLE sign_authorizations (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    credential_id TEXT NOT NULL,
    txn_id TEXT NOT NULL REFERENCES transactions(id),
    hash_algorithm TEXT NOT NULL,
    hashes BLOB NOT NULL,
    num_signatures BIGINT NOT NULL,
    status TEXT NOT NULL,
    sad_hash TEXT UNIQUE,
    sad_expires_at BIGINT,
    device_id TEXT,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX sign_authorizations_by_user ON sign_authorizations (user_id);
