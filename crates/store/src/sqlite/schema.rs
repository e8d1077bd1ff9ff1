//! The schema and its migrations, and opening the two connections.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::key::KEY_CHECK;
use super::{DbResult, SqliteStore};
use crate::{Result, StoreError};

/// Schema migrations, applied in order; `PRAGMA user_version` counts how
/// many have run. Only ever append: a shipped script is never edited, since
/// databases in the field have already run it.
///
/// `otp_secrets.owner` is the owner label of the secret
/// (`user:<uid>:<name>`, root's too since script 8; `system` before); the
/// SQL keeps to what PostgreSQL also reads (no reserved words as column
/// names, upserts with `ON CONFLICT`).
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the system entry, sealed secrets with replay state, failure
    //    counters, audit records, and the key check.
    "
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value BLOB NOT NULL
    ) STRICT;

    CREATE TABLE otp_secrets (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        owner         TEXT NOT NULL,
        sealed        BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL,
        last_step     INTEGER NULL CHECK (last_step IS NULL OR last_step >= 0)
    ) STRICT;
    CREATE INDEX otp_secrets_owner ON otp_secrets (owner);

    CREATE TABLE twofactor_config (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        otp_digits   INTEGER NOT NULL,
        otp_window   INTEGER NOT NULL,
        otp_interval INTEGER NOT NULL,
        services_ssh INTEGER NOT NULL CHECK (services_ssh IN (0, 1)),
        enabled      INTEGER NOT NULL CHECK (enabled IN (0, 1)),
        secret_id    INTEGER NULL REFERENCES otp_secrets (id)
    ) STRICT;
    INSERT INTO twofactor_config
        (id, otp_digits, otp_window, otp_interval, services_ssh, enabled, secret_id)
        VALUES (1, 6, 0, 30, 0, 0, NULL);

    CREATE TABLE rate_limits (
        scope           TEXT PRIMARY KEY NOT NULL,
        failures        INTEGER NOT NULL,
        window_start_ms INTEGER NOT NULL,
        locked_until_ms INTEGER NOT NULL,
        lockouts        INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE audit_log (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms     INTEGER NOT NULL,
        event     TEXT NOT NULL,
        outcome   TEXT NOT NULL,
        user_name TEXT NULL,
        origin    TEXT NOT NULL,
        service   TEXT NULL,
        detail    TEXT NULL
    ) STRICT;
    CREATE INDEX audit_log_at_ms ON audit_log (at_ms);
    CREATE INDEX audit_log_event ON audit_log (event);
    ",
    // 2: wrong-code counters keyed by (secret owner, origin) for the
    //    two-tier lock-out, with an expiry so rows of origins
    //    that went quiet are deleted; audit indexes for every filter of
    //    `audit.query`, newest first. The per-secret rows of the old scheme
    //    are dropped (their secret ids mean nothing to the new table).
    "
    CREATE TABLE otp_failures (
        owner           TEXT NOT NULL,
        origin          TEXT NOT NULL,
        failures        INTEGER NOT NULL,
        window_start_ms INTEGER NOT NULL,
        locked_until_ms INTEGER NOT NULL,
        lockouts        INTEGER NOT NULL,
        expires_at_ms   INTEGER NOT NULL,
        PRIMARY KEY (owner, origin)
    ) STRICT;
    CREATE INDEX otp_failures_expiry ON otp_failures (expires_at_ms);

    DELETE FROM rate_limits WHERE scope LIKE 'secret:%';

    DROP INDEX audit_log_event;
    CREATE INDEX audit_log_event_at ON audit_log (event, at_ms);
    CREATE INDEX audit_log_outcome_at ON audit_log (outcome, at_ms);
    ",
    // 3: per-user secrets. Root's secret stays the entry's
    //    (`twofactor_config.secret_id`, owner 'system', with its replay
    //    state in `otp_secrets.last_step` and its failure counters under
    //    owner 'system'): the entry's secret *is* root's, so an
    //    existing state moves to root in place, nothing re-sealed. Every
    //    other account's secret is a row of `otp_secrets` (owner
    //    'user:<uid>:<name>') mapped here by name. Pending enrolments and
    //    recovery-code hashes are kept by name for every account.
    "
    CREATE TABLE user_secrets (
        username     TEXT PRIMARY KEY NOT NULL,
        uid          INTEGER NOT NULL CHECK (uid >= 0),
        secret_id    INTEGER NOT NULL UNIQUE REFERENCES otp_secrets (id),
        otp_digits   INTEGER NOT NULL,
        otp_interval INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE pending_secrets (
        username      TEXT PRIMARY KEY NOT NULL,
        uid           INTEGER NOT NULL CHECK (uid >= 0),
        sealed        BLOB NOT NULL,
        otp_digits    INTEGER NOT NULL,
        otp_interval  INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE recovery_codes (
        username  TEXT NOT NULL,
        code_hash BLOB NOT NULL,
        PRIMARY KEY (username, code_hash)
    ) STRICT;
    ",
    // 4: `legacy_shared_code`, the transition mode of a state migrated from
    //    the single-secret model: while it is on, an account without a
    //    secret of its own is asked for root's code (the former system
    //    code) wherever a code is required. A state counts as migrated when
    //    2FA is enabled, the entry (root) has a secret and no other account
    //    has one: what migration 3 leaves of a single-secret state. A fresh
    //    state runs this before anything is enabled, so it never gets it.
    "
    ALTER TABLE twofactor_config ADD COLUMN legacy_shared_code INTEGER NOT NULL DEFAULT 0
        CHECK (legacy_shared_code IN (0, 1));
    UPDATE twofactor_config SET legacy_shared_code = 1
        WHERE id = 1 AND enabled = 1 AND secret_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM user_secrets);
    ",
    // 5: recovery codes bound to the uid they were made for. New codes
    //    carry the uid in their MAC input (`mac_version` 2). Codes made
    //    before (version 1, MAC over name and code) were made for the
    //    account as it was then, whose uid the secret row of that name
    //    records (root: 0); they keep that uid. Codes of a name with no
    //    secret row have no known uid and are dropped (they were never
    //    asked for: a code is only checked for an account with a secret).
    //    Secrets are also found by uid, to notice a renamed account.
    "
    CREATE TABLE recovery_codes_by_uid (
        username    TEXT NOT NULL,
        uid         INTEGER NOT NULL CHECK (uid >= 0),
        code_hash   BLOB NOT NULL,
        mac_version INTEGER NOT NULL CHECK (mac_version IN (1, 2)),
        PRIMARY KEY (username, code_hash)
    ) STRICT;
    INSERT INTO recovery_codes_by_uid (username, uid, code_hash, mac_version)
        SELECT r.username, CASE WHEN r.username = 'root' THEN 0 ELSE u.uid END, r.code_hash, 1
        FROM recovery_codes AS r LEFT JOIN user_secrets AS u ON u.username = r.username
        WHERE r.username = 'root' OR u.uid IS NOT NULL;
    DROP TABLE recovery_codes;
    ALTER TABLE recovery_codes_by_uid RENAME TO recovery_codes;
    CREATE INDEX user_secrets_uid ON user_secrets (uid);
    ",
    // 6: audit records survive a flood. Each record has a retention class
    //    ('routine' for code checks and logins that anyone can repeat,
    //    'security' for everything else) with its own budget; a row can
    //    stand for several identical records (`occurrences`), written in
    //    place of repeats beyond a small rate (`agg_key` finds the rows of
    //    one kind). Rows per class are counted by triggers, so pruning by
    //    count needs no scan. Existing records are classed by their kind.
    "
    ALTER TABLE audit_log ADD COLUMN class TEXT NOT NULL DEFAULT 'security'
        CHECK (class IN ('routine', 'security'));
    ALTER TABLE audit_log ADD COLUMN occurrences INTEGER NOT NULL DEFAULT 1
        CHECK (occurrences >= 1);
    ALTER TABLE audit_log ADD COLUMN agg_key TEXT NULL;
    UPDATE audit_log SET class = 'routine'
        WHERE (event = 'otp.check'
               AND outcome IN ('accepted', 'wrong', 'malformed', 'replayed', 'locked_out',
                               'not_configured'))
           OR (event = 'auth.login' AND outcome IN ('wrong_password', 'suppressed'))
           OR event = 'auth.logout';
    CREATE INDEX audit_log_class_at ON audit_log (class, at_ms);
    CREATE INDEX audit_log_class_id ON audit_log (class, id);
    CREATE INDEX audit_log_agg ON audit_log (agg_key, at_ms) WHERE agg_key IS NOT NULL;

    CREATE TABLE audit_class_rows (
        class     TEXT PRIMARY KEY NOT NULL,
        row_count INTEGER NOT NULL
    ) STRICT;
    INSERT INTO audit_class_rows (class, row_count)
        SELECT 'routine', count(*) FROM audit_log WHERE class = 'routine';
    INSERT INTO audit_class_rows (class, row_count)
        SELECT 'security', count(*) FROM audit_log WHERE class = 'security';
    CREATE TRIGGER audit_log_counted AFTER INSERT ON audit_log BEGIN
        UPDATE audit_class_rows SET row_count = row_count + 1 WHERE class = NEW.class;
    END;
    CREATE TRIGGER audit_log_uncounted AFTER DELETE ON audit_log BEGIN
        UPDATE audit_class_rows SET row_count = row_count - 1 WHERE class = OLD.class;
    END;
    ",
    // 7: the account an audit record is about (its detail's `account`, or
    //    else the account that acted), indexed with the time for
    //    `audit.query user=`; existing records get theirs from their detail.
    "
    ALTER TABLE audit_log ADD COLUMN account TEXT;
    UPDATE audit_log
       SET account = coalesce(
           CASE WHEN json_valid(detail) THEN json_extract(detail, '$.account') END,
           user_name);
    CREATE INDEX audit_log_account_at ON audit_log (account, at_ms);
    ",
    // 8: root is an ordinary account. Root's secret (the entry's,
    //    `twofactor_config.secret_id`) becomes the row of name 'root', uid 0
    //    of the per-user secrets, with the entry's digits and interval; its
    //    replay state (`otp_secrets.last_step`) stays where it is. Its
    //    failure counters move from the owner label 'system' to root's
    //    label 'user:0:root'. The secret row keeps the owner 'system' until
    //    the store re-seals it under root's label (that needs the key
    //    file, see `key::reseal_root`), which the same opening does next.
    //    A secret stored under the name 'root' for another uid (an
    //    account that only shares the name) gives way to the entry's, with
    //    its counters; without an entry secret it stays. The entry's
    //    `secret_id` is no longer used (always NULL); `otp_digits` and
    //    `otp_interval` remain as the defaults for new secrets.
    "
    DELETE FROM otp_failures
        WHERE owner LIKE 'user:%:root'
          AND (SELECT secret_id FROM twofactor_config WHERE id = 1) IS NOT NULL;
    DELETE FROM user_secrets
        WHERE username = 'root'
          AND (SELECT secret_id FROM twofactor_config WHERE id = 1) IS NOT NULL;
    DELETE FROM otp_secrets
        WHERE id NOT IN (SELECT secret_id FROM user_secrets)
          AND id IS NOT (SELECT secret_id FROM twofactor_config WHERE id = 1);
    INSERT INTO user_secrets (username, uid, secret_id, otp_digits, otp_interval)
        SELECT 'root', 0, secret_id, otp_digits, otp_interval
        FROM twofactor_config WHERE id = 1 AND secret_id IS NOT NULL;
    UPDATE twofactor_config SET secret_id = NULL WHERE id = 1;
    UPDATE otp_failures SET owner = 'user:0:root' WHERE owner = 'system';
    ",
    // 9: change notices, so that a process on this state hears what others
    //    commit. One row per thing that can change (the entry and each
    //    account by name), rewritten by every transaction that
    //    changes it with the next sequence number and the writing handle's
    //    token; a watcher reads the rows past the last number it saw and
    //    skips its own handle's (already told in-process). The table stays
    //    as small as the set of accounts ever changed.
    "
    CREATE TABLE change_notices (
        kind     TEXT NOT NULL CHECK (kind IN ('entry', 'user')),
        username TEXT NOT NULL,
        seq      INTEGER NOT NULL,
        writer   INTEGER NOT NULL,
        PRIMARY KEY (kind, username)
    ) STRICT;
    CREATE INDEX change_notices_seq ON change_notices (seq);
    ",
    // 10: three objects fewer to read at every opening (each opening
    //    parses the whole schema; these three were a twentieth of all that
    //    `tfa` runs at start). The audit row counts per class
    //    (`audit_class_rows`) are kept by the statements that add and
    //    delete audit rows, in the same transaction, instead of by
    //    triggers (`audit::insert`, `audit::prune_audit`, the snapshot
    //    import); they are exact at this point, the triggers having kept
    //    them until now. The first schema's `rate_limits` table, neither
    //    read nor written since migration 2, goes.
    "
    DROP TRIGGER audit_log_counted;
    DROP TRIGGER audit_log_uncounted;
    DROP TABLE rate_limits;
    ",
];

/// The read connection (read-only; it still maps the WAL index).
pub(super) fn open_reader(db_path: &Path) -> Result<Connection> {
    let reader = Connection::open_with_flags(
        db_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db()?;
    reader.busy_timeout(BUSY_WAIT).db()?;
    Ok(reader)
}

/// The write connection, configured.
pub(super) fn open_writer(db_path: &Path) -> Result<Connection> {
    let conn = Connection::open(db_path).db()?;
    configure(&conn)?;
    Ok(conn)
}

/// On a state that needs nothing written to open (the schema this build
/// writes, and the key check stored), the sealed key check; `None` when
/// anything is missing or different, or reading fails: then the full way
/// decides, and reports what is wrong. One read transaction, no lock taken.
pub(super) fn ready_key_check(conn: &Connection) -> Option<Vec<u8>> {
    let tx = conn.unchecked_transaction().ok()?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .ok()?;
    if version != SqliteStore::SCHEMA_VERSION {
        return None;
    }
    // A secret still sealed under its former owner label waits for
    // `key::reseal_root`, which the full way runs.
    let unsealed_move: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM otp_secrets WHERE owner = ?1)",
            [crate::model::LEGACY_SYSTEM_OWNER],
            |r| r.get(0),
        )
        .ok()?;
    if unsealed_move {
        return None;
    }
    tx.query_row("SELECT value FROM meta WHERE key = ?1", [KEY_CHECK], |r| {
        r.get(0)
    })
    .ok()
}

/// How long opening waits for other connections (the busy timeout, and
/// the bound of [`switch_to_wal`]'s retries).
pub(super) const BUSY_WAIT: Duration = Duration::from_secs(5);

pub(super) fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_WAIT).db()?;
    switch_to_wal(conn)?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA trusted_schema = OFF;",
    )
    .db()
}

/// `PRAGMA journal_mode = WAL`. SQLite answers it `SQLITE_BUSY` at once,
/// without its busy handler, while another connection holds a lock (two
/// processes opening a new state directory together: one sets WAL while
/// the other reads the header), so it is retried here, with a growing
/// pause, for as long as the busy timeout would have waited. The mode
/// in force is returned; a file system without shared memory keeps the
/// rollback journal, which is just as transactional.
fn switch_to_wal(conn: &Connection) -> Result<()> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Ok(_mode) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < BUSY_WAIT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(e).db(),
        }
    }
}

/// Applies the missing migrations, each in its own transaction.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let known = SqliteStore::SCHEMA_VERSION;
    loop {
        // IMMEDIATE, so two processes opening a new directory do not both
        // run the same migration.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        let found: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .db()?;
        if found > known {
            return Err(StoreError::SchemaTooNew { found, known });
        }
        let Some(script) = usize::try_from(found).ok().and_then(|v| MIGRATIONS.get(v)) else {
            if found == known {
                return tx.commit().db();
            }
            return Err(StoreError::Corrupt(format!(
                "schema version {found} is invalid"
            )));
        };
        tx.execute_batch(script).db()?;
        tx.pragma_update(None, "user_version", found + 1).db()?;
        tx.commit().db()?;
    }
}
