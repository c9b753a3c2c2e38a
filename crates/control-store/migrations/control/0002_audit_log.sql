-- Every admin write: who did what to which object, when (unix seconds),
-- with a JSON summary that never holds a secret.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    object_kind TEXT    NOT NULL,
    object_id   TEXT    NOT NULL,
    summary     TEXT    NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_by_object ON audit_log (object_kind, object_id);
