-- Documents signed in the portal (DESIGN §6): a job per upload, its documents prepared for
-- signing (the PDF with the signature's placeholder), then their signature values once the
-- user approved in ConsentID, then the finished PDFs at the chosen PAdES level.
CREATE TABLE signing_jobs (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    authorization_id TEXT NOT NULL REFERENCES sign_authorizations(id),
    level TEXT NOT NULL,
    status TEXT NOT NULL,
    hint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX signing_jobs_by_user ON signing_jobs (user_id);

CREATE TABLE signing_documents (
    job_id TEXT NOT NULL REFERENCES signing_jobs(id),
    position BIGINT NOT NULL,
    filename TEXT NOT NULL,
    prepared BLOB NOT NULL,
    signature BLOB,
    signed_pdf BLOB,
    PRIMARY KEY (job_id, position)
);
