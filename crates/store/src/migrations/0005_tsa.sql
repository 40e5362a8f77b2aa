-- The time-stamping unit (RFC 3161) is issued by the qualified CA; its current certificate and
-- key are kept on that CA's row, as the delegated OCSP signer is.
ALTER TABLE authorities ADD COLUMN tsa_serial TEXT;
ALTER TABLE authorities ADD COLUMN tsa_key_id TEXT REFERENCES keys(id);
ALTER TABLE authorities ADD COLUMN tsa_certificate BLOB;
ALTER TABLE authorities ADD COLUMN tsa_not_after BIGINT;
