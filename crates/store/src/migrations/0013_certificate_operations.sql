-- Certificate operations approved in ConsentID (issue 22): an issue, a renewal, a revocation
-- and a revoke-everything each wait for an approval of their own on the phone.

-- The device's approval of a request (the signed approval message and its signature), kept
-- with the request once it is approved.
ALTER TABLE transactions ADD COLUMN approval TEXT;
ALTER TABLE transactions ADD COLUMN approval_signature BLOB;

-- An operation the portal asked for, waiting for its approval (`txn_id`), then done or failed.
-- An issue or a renewal carries the agreement the citizen is asked to accept.
CREATE TABLE certificate_operations (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    operation TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    session_binding TEXT NOT NULL,
    agreement_number TEXT,
    agreement_text TEXT,
    certificate_serial TEXT,
    status TEXT NOT NULL,
    hint TEXT NOT NULL,
    result_serial TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX certificate_operations_by_user ON certificate_operations (user_id, created_at);

-- The evidence kept with an agreement: the request the phone showed (its exact bytes, which
-- hold the agreement's hash), the approval message over them, the device's signature, and the
-- device. Agreements accepted before this release have none.
ALTER TABLE agreements ADD COLUMN approval_payload BLOB;
ALTER TABLE agreements ADD COLUMN approval TEXT;
ALTER TABLE agreements ADD COLUMN approval_signature BLOB;
ALTER TABLE agreements ADD COLUMN device_id TEXT;
