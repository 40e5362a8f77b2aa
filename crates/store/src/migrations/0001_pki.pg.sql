-- Keys of every backend; `reference` is opaque to the store (sealed PKCS#8 or a PKCS#11 id).
CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    label TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    reference BYTEA NOT NULL,
    public_key BYTEA NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    destroyed_at BIGINT
);

-- The CA hierarchy: root, qualified, consentid; each with its CRL and delegated OCSP signer.
CREATE TABLE authorities (
    name TEXT PRIMARY KEY,
    serial TEXT NOT NULL,
    key_id TEXT NOT NULL REFERENCES keys(id),
    certificate BYTEA NOT NULL,
    crl_number BIGINT NOT NULL,
    crl BYTEA,
    crl_next_update BIGINT,
    ocsp_serial TEXT,
    ocsp_key_id TEXT REFERENCES keys(id),
    ocsp_certificate BYTEA,
    ocsp_not_after BIGINT
);

-- Every serial ever reserved. The row exists before the certificate is signed.
CREATE TABLE certificates (
    serial TEXT PRIMARY KEY,
    authority TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    subject TEXT NOT NULL,
    email TEXT,
    key_id TEXT REFERENCES keys(id),
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    der BYTEA,
    reserved_at BIGINT NOT NULL,
    issued_at BIGINT,
    revoked_at BIGINT,
    revocation_reason INTEGER
);
CREATE INDEX certificates_by_authority_status ON certificates (authority, status);
CREATE INDEX certificates_by_email ON certificates (email);

-- One row: bumped by every status change, so OCSP caches in every process see it.
CREATE TABLE status_revision (
    id INTEGER PRIMARY KEY,
    revision BIGINT NOT NULL
);
INSERT INTO status_revision (id, revision) VALUES (1, 0);

-- The audit log (DESIGN §7): append-only, each entry hash-chained to the one before.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
-- The head of the chain, a single row that serialises appends.
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
