-- Accounts (DESIGN §3). E-mail is stored lower-case; assurance is basic or high.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    given_name TEXT NOT NULL,
    surname TEXT NOT NULL,
    jmbg TEXT NOT NULL,
    password_hash TEXT,
    email_verified BIGINT NOT NULL,
    assurance TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- ConsentID activation codes: only a hash is kept; `lookup` is the code's public part.
CREATE TABLE activations (
    id TEXT PRIMARY KEY,
    lookup TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    expires_at BIGINT NOT NULL,
    tries_left BIGINT NOT NULL,
    nonce TEXT,
    used_at BIGINT,
    created_at BIGINT NOT NULL
);

-- ConsentID devices: the device key, the PIN public key (known only to the server), the
-- wrong-PIN counter and the device certificate.
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    public_key BLOB NOT NULL,
    pin_public_key BLOB NOT NULL,
    state TEXT NOT NULL,
    pin_failures BIGINT NOT NULL,
    certificate_serial TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX devices_by_user ON devices (user_id);

-- Login and signing requests (reference/mobile-auth.md §7.5, §7.8).
CREATE TABLE transactions (
    id TEXT PRIMARY KEY,
    user_id TEXT,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    hint TEXT NOT NULL,
    challenge TEXT NOT NULL,
    payload BLOB NOT NULL,
    signature BLOB NOT NULL,
    verification_code TEXT NOT NULL,
    session_binding TEXT NOT NULL,
    device_id TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT
);
CREATE INDEX transactions_by_user_status ON transactions (user_id, status);

-- Browser sessions, anonymous ones included; only a hash of the cookie is stored.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT,
    auth_method TEXT,
    device_id TEXT,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    authenticated_at BIGINT,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX sessions_by_device ON sessions (device_id);

-- Fixed-window counters for rate limits.
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    count BIGINT NOT NULL
);

-- Device request nonces seen recently (replay protection).
CREATE TABLE used_nonces (
    nonce TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

-- E-mail verification links of self-registration; only a hash of the token is stored.
CREATE TABLE email_verifications (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

-- Keys of the service itself: the app-channel signing key and the PIN-material encryption key.
CREATE TABLE service_keys (
    name TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES keys(id)
);
