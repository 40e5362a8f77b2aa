-- CIBA's ping mode (OpenID Connect CIBA Core 1.0 §10.2): a ping-mode request keeps the
-- notification it owes its client until it is delivered or given up: the `auth_req_id` itself
-- (only its hash is kept otherwise) and the client's `client_notification_token`, both sent
-- back to the client and so kept as given, and forgotten once the notification is settled.
-- `ping_due_at` is when to send it: the request's end at first, the moment the citizen
-- answers once she does, and after a failure the retry; none once settled (or for a poll-mode
-- request).
ALTER TABLE oidc_ciba ADD COLUMN ping_auth_req_id TEXT;
ALTER TABLE oidc_ciba ADD COLUMN ping_token TEXT;
ALTER TABLE oidc_ciba ADD COLUMN ping_due_at BIGINT;
ALTER TABLE oidc_ciba ADD COLUMN ping_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE oidc_ciba ADD COLUMN ping_delivered_at BIGINT;
ALTER TABLE oidc_ciba ADD COLUMN ping_given_up_at BIGINT;
ALTER TABLE oidc_ciba ADD COLUMN ping_error TEXT;
CREATE INDEX oidc_ciba_ping_due ON oidc_ciba (ping_due_at) WHERE ping_due_at IS NOT NULL;
