-- Service agreements (the seed's step 9): generated per user, accepted before issuance, kept.
CREATE TABLE agreements (
    number TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    certificate_serial TEXT NOT NULL,
    text TEXT NOT NULL,
    accepted_at BIGINT NOT NULL
);
CREATE INDEX agreements_by_user ON agreements (user_id);
