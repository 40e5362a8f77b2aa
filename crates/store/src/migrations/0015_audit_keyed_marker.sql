-- Where the audit chain's keyed part starts (`Store::audit_keyed_from`) is read at every start
-- of every process and by the upkeep's checkpoints. Without an index it scanned the whole
-- audit log: 1-2 s at a million citizens (issue 24, `scripts/bench scale`). The marker entries
-- are one or two rows, so a partial index costs nothing on the audit log's appends.
CREATE INDEX audit_log_keyed_marker ON audit_log (seq)
    WHERE event = 'audit.keyed' AND actor = 'system';
