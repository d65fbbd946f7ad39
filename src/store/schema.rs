//! Schema migrations, keyed on `PRAGMA user_version`. Append new steps; never edit a released one.
//!
//! Server-derived rows (folders, messages, locations) can be rebuilt from the server; user data
//! (credentials, outbox, pairings, customers, triage actions, the audit log, pending local
//! changes) never is, and no migration or cache rebuild may reset it.

pub const MIGRATIONS: &[&str] = &[
    // 1: the whole first schema.
    r#"
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,                 -- immutable; config.toml names map to it
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',   -- disabled|pending|idle|syncing|degraded|disconnected|error
    state_since TEXT NOT NULL,
    last_success_at TEXT,
    failing_since TEXT,                  -- start of the current run of failures (give-up clock)
    last_error_at TEXT,
    last_error_what TEXT,
    last_error_fix TEXT,
    progress_folder TEXT,
    progress_done INTEGER,
    progress_total INTEGER,
    runs_total INTEGER NOT NULL DEFAULT 0,
    runs_ok INTEGER NOT NULL DEFAULT 0,
    last_duration_ms INTEGER,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    messages_total INTEGER NOT NULL DEFAULT 0,
    capabilities TEXT                    -- last seen server CAPABILITY, space separated
);

-- Sealed secrets (see secret.rs); kind = imap|smtp.
CREATE TABLE credentials (
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    sealed TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account_id, kind)
);

CREATE TABLE folders (
    id INTEGER PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,                  -- decoded (UTF-8) name
    wire_name TEXT NOT NULL,             -- modified UTF-7 as the server spells it
    delimiter TEXT,
    attributes TEXT NOT NULL DEFAULT '', -- LIST attributes, space separated
    role TEXT,                           -- inbox|sent|drafts|trash|junk|archive
    role_source TEXT,                    -- special_use|name|user
    sync_enabled INTEGER NOT NULL DEFAULT 0,
    selectable INTEGER NOT NULL DEFAULT 1,
    uidvalidity INTEGER,
    uidnext INTEGER,
    highestmodseq INTEGER,
    exists_count INTEGER,
    total_bytes INTEGER,
    first_sync_done INTEGER NOT NULL DEFAULT 0,
    checkpoint_uid INTEGER,              -- first sync resumes after this UID
    mark_read_from_uid INTEGER,          -- "mark read after processing": only UIDs >= this
    last_synced_at TEXT,
    present INTEGER NOT NULL DEFAULT 1,  -- still listed by the server
    UNIQUE (account_id, name)
);

-- One row per logical message; a message seen in several folders/accounts has several locations.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    message_id TEXT,                     -- Message-ID without <>, NULL if absent (never merged then)
    content_hash TEXT NOT NULL,          -- hash of normalised Date, From, To, Cc, Subject
    thread_id INTEGER,                   -- id of the thread root message
    in_reply_to TEXT,
    refs TEXT,                           -- References, space separated ids
    from_addr TEXT,                      -- normalised (lower-case) address
    from_name TEXT,
    to_json TEXT NOT NULL DEFAULT '[]',  -- [{"name":..,"address":..}]
    cc_json TEXT NOT NULL DEFAULT '[]',
    subject TEXT,
    date TEXT,                           -- RFC 3339 UTC
    size INTEGER,
    has_attachments INTEGER NOT NULL DEFAULT 0,
    headers BLOB,                        -- raw header block
    body BLOB,                           -- raw full message, when fetched
    text_body TEXT,                      -- readable text (HTML converted), when fetched
    direction TEXT NOT NULL DEFAULT 'in',-- in|out (out: found in Sent or sent by us)
    customer_id INTEGER REFERENCES customers(id) ON DELETE SET NULL,
    denied INTEGER NOT NULL DEFAULT 0,   -- from a blocked sender: stored, hidden
    triage_state TEXT,                   -- NULL|deleted (operator removed it from the queue)
    created_at TEXT NOT NULL
);
CREATE INDEX messages_by_msgid ON messages(message_id);
CREATE INDEX messages_by_date ON messages(date DESC);
CREATE INDEX messages_by_thread ON messages(thread_id);
CREATE INDEX messages_by_from ON messages(from_addr);
CREATE INDEX messages_by_customer ON messages(customer_id, date DESC);

CREATE TABLE locations (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    uidvalidity INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    flags TEXT NOT NULL DEFAULT '',      -- space separated, e.g. "\Seen \Flagged"
    seen INTEGER NOT NULL DEFAULT 0,     -- flags has \Seen (kept apart for fast unread counts)
    modseq INTEGER,
    internal_date TEXT,
    UNIQUE (folder_id, uidvalidity, uid)
);
CREATE INDEX locations_by_message ON locations(message_id);
CREATE INDEX locations_by_account ON locations(account_id, seen);

-- Local changes waiting to be pushed to the server (flags, moves, deletes); survives restarts.
CREATE TABLE pending_ops (
    id INTEGER PRIMARY KEY,
    account_id TEXT NOT NULL,
    location_id INTEGER,
    message_id INTEGER,
    op TEXT NOT NULL,                    -- add_flags|remove_flags|move|delete
    arg TEXT,                            -- flags or target folder name
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    done_at TEXT
);
CREATE INDEX pending_ops_open ON pending_ops(account_id, done_at);

-- Messages that failed to parse or fetch; raw bytes kept so nothing is lost.
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY,
    account_id TEXT NOT NULL,
    folder_id INTEGER,
    folder_name TEXT,
    uidvalidity INTEGER,
    uid INTEGER,
    raw BLOB,
    error TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open',  -- open|retried|skipped
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1
);

-- The error and event log: what happened, what failed, how to fix it.
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    account_id TEXT,
    level TEXT NOT NULL,                 -- error|warn|info|debug
    what TEXT NOT NULL,
    detail TEXT,
    fix TEXT
);
CREATE INDEX events_by_time ON events(at);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    operator TEXT NOT NULL,
    action TEXT NOT NULL,
    account_id TEXT,
    target TEXT,
    detail TEXT                          -- JSON
);

-- One sync owner per account across processes.
CREATE TABLE leases (
    account_id TEXT PRIMARY KEY,
    holder_pid INTEGER NOT NULL,
    holder_host TEXT NOT NULL,
    holder_token TEXT NOT NULL,
    since TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    account_id TEXT NOT NULL,
    operator TEXT,
    from_addr TEXT NOT NULL,
    rcpt_json TEXT NOT NULL,             -- envelope recipients incl. Bcc
    message_id TEXT NOT NULL,
    subject TEXT,
    raw BLOB NOT NULL,                   -- exact RFC 5322 bytes sent over SMTP
    state TEXT NOT NULL,                 -- queued|sending|uncertain|sent|copied|verified|failed|cancelled
    copy_state TEXT,                     -- pending|appended|filed_by_server|skipped|failed
    copy_folder TEXT,
    copy_uid INTEGER,
    copy_uidvalidity INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    copy_attempts INTEGER NOT NULL DEFAULT 0,
    last_error_what TEXT,
    last_error_fix TEXT,
    next_attempt_at TEXT,
    in_reply_to TEXT,
    thread_message_id INTEGER,           -- local message this replies to
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX outbox_by_state ON outbox(state);

CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    company TEXT,
    notes TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE customer_emails (
    email TEXT PRIMARY KEY,              -- normalised
    customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE
);
CREATE INDEX customer_emails_by_customer ON customer_emails(customer_id);
CREATE TABLE customer_domains (
    domain TEXT NOT NULL,                -- normalised (lower-case, punycode)
    customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    PRIMARY KEY (domain, customer_id)
);

-- Why a message belongs to a customer.
CREATE TABLE matches (
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    rule TEXT NOT NULL,                  -- address|domain|thread|manual
    detail TEXT,
    PRIMARY KEY (message_id, customer_id)
);
CREATE INDEX matches_by_customer ON matches(customer_id);

-- Operator actions on triage, undoable. Pairings live here and in matches(rule='manual'),
-- keyed by the logical message id, never by UID.
CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    operator TEXT NOT NULL,
    kind TEXT NOT NULL,                  -- pair|add_customer|block|delete
    message_id INTEGER,
    payload TEXT NOT NULL,               -- JSON: what to undo
    undone_at TEXT
);

CREATE VIRTUAL TABLE messages_fts USING fts5(subject, addresses, body, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');
"#,
    // 2 (issue 4, send pipeline): the Sent copy's own bytes when they differ from what SMTP got
    // (content options, dropped attachments), a claim so two processes never drive one item at
    // once (and a dead claimant's `sending` item becomes `uncertain`), and the verify time.
    r#"
ALTER TABLE outbox ADD COLUMN copy_raw BLOB;             -- NULL: the copy is `raw` byte for byte
ALTER TABLE outbox ADD COLUMN copy_note TEXT;            -- what the copy leaves out, if anything
ALTER TABLE outbox ADD COLUMN claim TEXT;                -- host:pid:token of the driving process
ALTER TABLE outbox ADD COLUMN claim_until TEXT;
ALTER TABLE outbox ADD COLUMN verified_at TEXT;
ALTER TABLE outbox ADD COLUMN last_error_at TEXT;
ALTER TABLE outbox ADD COLUMN size INTEGER;
CREATE INDEX outbox_by_account_state ON outbox(account_id, state);
"#,
    // 3 (issue 5): matching bookkeeping and indexes for triage and threads.
    // `crm_examined` = 0 marks mail that matching has not seen yet (new rows get it by default),
    // so mail stored without matching (an older build, a crash between a batch and its
    // matching) is caught up later; a flag rather than a high-water id, because ids of deleted
    // rows are reused. The partial indexes keep both lookups off the full table.
    r#"
ALTER TABLE messages ADD COLUMN crm_examined INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_crm_pending ON messages(id) WHERE crm_examined = 0;
CREATE INDEX messages_triage ON messages(date DESC, id DESC)
    WHERE direction = 'in' AND customer_id IS NULL AND denied = 0 AND triage_state IS NULL;
CREATE INDEX messages_by_in_reply_to ON messages(in_reply_to);
"#,
    // 4 (issue 3, sync speed): every index on `messages` is paid for by each message a first
    // sync stores. No query looks messages up by thread_id (threads are read by id), and
    // customers' mail is read through `matches`; a lookup by customer stays possible through a
    // partial index that new (unmatched) mail does not enter. messages_by_from stays: crm's
    // targeted rematch (`messages_mentioning`) looks senders up by from_addr.
    r#"
DROP INDEX messages_by_thread;
DROP INDEX messages_by_customer;
CREATE INDEX messages_by_customer ON messages(customer_id, date DESC) WHERE customer_id IS NOT NULL;
"#,
    // 5 (issue 2, status speed): `status` counts an account's distinct messages and unread ones;
    // with message_id in the index those counts are a covering index scan instead of a temporary
    // b-tree (36 ms → 9 ms at 100k). It replaces (account_id, seen), so sync pays no extra index.
    r#"
DROP INDEX locations_by_account;
CREATE INDEX locations_by_account ON locations(account_id, message_id, seen);
"#,
    // 6 (issue 13, the outbox's memory): `copy_token` is committed before a Sent copy is
    // appended and goes into the copy as `X-Mailroom-Copy: TOKEN`, so after a crash between the
    // APPEND and its commit mailroom recognises its own copy (never a second one, never taken for
    // the server's). `sent_filing` is what was learned about a server filing sent mail into a
    // folder itself: learned only from a copy there without our token, unlearned when an
    // expected server copy does not show up in time. It starts from what older versions
    // concluded (some of it wrong); the first wait that ends without the server's copy
    // unlearns a wrong conclusion.
    r#"
ALTER TABLE outbox ADD COLUMN copy_token TEXT;
CREATE TABLE sent_filing (
    account_id TEXT NOT NULL,
    folder TEXT NOT NULL,
    server_files INTEGER NOT NULL,       -- 1: the server files sent mail here itself; 0: unlearned
    since TEXT NOT NULL,
    evidence TEXT NOT NULL,              -- what taught it (for people)
    PRIMARY KEY (account_id, folder)
);
INSERT INTO sent_filing (account_id, folder, server_files, since, evidence)
    SELECT account_id, copy_folder, 1, MAX(updated_at), 'a copy found in the folder by an earlier version (outbox #' || MAX(id) || ')'
    FROM outbox WHERE copy_state = 'filed_by_server' AND copy_folder IS NOT NULL
    GROUP BY account_id, copy_folder;
"#,
    // 7 (issue 14, the console's mail pane and search): a folder's index is read newest first
    // in keyset pages straight from one index, so each location carries its message's date
    // (`sort_date`, '' when unknown) and thread (`thread_id`, the root's id): both are fixed
    // when the message is stored, so copying them is safe. Sync sets them in its INSERT; the
    // trigger fills them for any other writer. Thread members are found through a partial index
    // only replies enter; blocked mail through one only denied mail enters (counts subtract
    // it). Each message's queued changes are looked up by message (the index shows their
    // state). Drafts are user data: what the operator typed survives a quit or a crash.
    r#"
ALTER TABLE locations ADD COLUMN sort_date TEXT NOT NULL DEFAULT '';
ALTER TABLE locations ADD COLUMN thread_id INTEGER;
UPDATE locations SET
    sort_date = COALESCE((SELECT m.date FROM messages m WHERE m.id = locations.message_id), ''),
    thread_id = (SELECT COALESCE(m.thread_id, m.id) FROM messages m WHERE m.id = locations.message_id);
CREATE INDEX locations_by_folder_date ON locations(folder_id, sort_date DESC, message_id DESC, thread_id, seen);
CREATE TRIGGER locations_fill_sort AFTER INSERT ON locations WHEN NEW.thread_id IS NULL
BEGIN
    UPDATE locations SET
        sort_date = COALESCE((SELECT m.date FROM messages m WHERE m.id = NEW.message_id), ''),
        thread_id = (SELECT COALESCE(m.thread_id, m.id) FROM messages m WHERE m.id = NEW.message_id)
    WHERE id = NEW.id;
END;
CREATE INDEX messages_thread_members ON messages(thread_id) WHERE thread_id <> id;
CREATE INDEX messages_denied ON messages(id) WHERE denied = 1;
CREATE INDEX pending_ops_by_message ON pending_ops(message_id);

CREATE TABLE drafts (
    id INTEGER PRIMARY KEY,
    operator TEXT NOT NULL,              -- whose draft it is (restored for them only)
    account_id TEXT,                     -- sent from this account (NULL: not chosen yet)
    from_addr TEXT,                      -- an alias of it; NULL: the account's own address
    to_text TEXT NOT NULL DEFAULT '',    -- as typed: comma-separated addresses
    cc_text TEXT NOT NULL DEFAULT '',
    bcc_text TEXT NOT NULL DEFAULT '',
    reply_to_text TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL DEFAULT '',
    attachments_json TEXT NOT NULL DEFAULT '[]', -- file paths
    kind TEXT NOT NULL DEFAULT 'new',    -- new|reply|reply_all|forward
    source_id INTEGER,                   -- the message answered or forwarded
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    server_folder TEXT,                  -- its copy in the Drafts folder, once uploaded
    server_uidvalidity INTEGER,
    server_uid INTEGER,
    server_message_id TEXT,
    uploaded_at TEXT
);
CREATE INDEX drafts_by_operator ON drafts(operator, updated_at);
"#,
    // 8 (issue 15, OAuth2 sign-in): the tokens themselves are sealed in `credentials` (kind
    // `oauth2`, with the access token's expiry inside); this row is what every process sharing
    // the store coordinates on. `generation` counts the token sets an account has had; a
    // refresh is claimed by compare-and-set on it (`refresh_holder` + `refresh_until`, which
    // lapses if the refresher dies), so two processes never refresh at once — providers that
    // rotate refresh tokens would refuse the second. `login_needed` stops every process from
    // asking the provider again once it refused; `failures`/`failed_at` space out retries while
    // the authorization server is down.
    r#"
CREATE TABLE oauth_state (
    account_id TEXT PRIMARY KEY,
    generation INTEGER NOT NULL DEFAULT 0,
    expires_at TEXT,
    refresh_holder TEXT,
    refresh_until TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    failed_at TEXT,
    last_error TEXT,
    login_needed TEXT,
    refreshes INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
"#,
    // 9 (issue 19, alerts): what went wrong, queued for the process that syncs the account
    // (`alert_events`), one delivery per channel with its own retries and claim
    // (`alert_deliveries`), the failure state last raised per account (one alert per
    // transition) with its quiet window (`alert_accounts`), and which channels were told an
    // account is failing (only they hear `recovered`: `alert_told`).
    r#"
CREATE TABLE alert_events (
    id INTEGER PRIMARY KEY,
    account_id TEXT,                     -- NULL: about no one account
    event TEXT NOT NULL,                 -- degraded|disconnected|…|login_needed|digest
    state TEXT,                          -- the account's state when it happened
    at TEXT NOT NULL,
    what TEXT NOT NULL,
    fix TEXT NOT NULL DEFAULT '',
    code TEXT,                           -- the failure's error code
    status TEXT NOT NULL DEFAULT 'new',  -- new|sent|held|digested|unrouted
    digest_id INTEGER,                   -- digested: the digest that carried it
    routed_at TEXT
);
CREATE INDEX alert_events_open ON alert_events(account_id, status) WHERE status IN ('new', 'held');
CREATE TABLE alert_deliveries (
    id INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL,
    account_id TEXT,
    channel INTEGER NOT NULL,            -- [[alerts.channels]] id
    payload TEXT NOT NULL,               -- the event JSON this channel gets
    state TEXT NOT NULL DEFAULT 'pending', -- pending|delivered|failed|cancelled
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    next_at TEXT NOT NULL,
    claim TEXT,                          -- host:pid:token of the delivering process
    claim_until TEXT,
    result TEXT,                         -- exit status, HTTP status or SMTP reply
    output TEXT,                         -- what the command printed (cut, cleaned)
    last_error TEXT,
    last_fix TEXT,
    last_code TEXT,
    done_at TEXT
);
CREATE INDEX alert_deliveries_due ON alert_deliveries(state, next_at);
CREATE INDEX alert_deliveries_by_channel ON alert_deliveries(channel, id);
CREATE TABLE alert_accounts (
    account_id TEXT PRIMARY KEY,
    failing TEXT,                        -- the failure state last raised; NULL: healthy
    last_alert_at TEXT                   -- the last alert or digest routed: the quiet window
);
CREATE TABLE alert_told (
    channel INTEGER NOT NULL,
    account_id TEXT NOT NULL,
    failing INTEGER NOT NULL,
    PRIMARY KEY (channel, account_id)
);
"#,
    // 10 (issue 16, full offline mode): bodies in a table of their own, one row per logical
    // message. Inline in `messages` a body pushed every column after it (direction, denied,
    // triage state…) behind its overflow pages, so every list read the bodies' pages too.
    // `text` is the readable text once extracted (NULL: taken from `raw` when needed);
    // `indexed` says whether the body's words are in messages_fts. The accounts keep what
    // their bodies take, for `status`.
    r#"
CREATE TABLE bodies (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    raw BLOB NOT NULL,
    text TEXT,
    size INTEGER NOT NULL,
    indexed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX bodies_to_index ON bodies(message_id) WHERE indexed = 0;
INSERT INTO bodies (message_id, raw, text, size, indexed)
    SELECT id, body, text_body, length(body), 1 FROM messages WHERE body IS NOT NULL;
UPDATE messages SET body = NULL, text_body = NULL WHERE body IS NOT NULL;
ALTER TABLE accounts ADD COLUMN bodies_count INTEGER;
ALTER TABLE accounts ADD COLUMN bodies_bytes INTEGER;
"#,
    // 11 (issue 14, the protocol trace): per account, a switch (a setting in the store, so a
    // console can turn on the trace of an account whose sync another process — the daemon —
    // holds) and a bounded ring of redacted protocol lines (the writer keeps the newest).
    r#"
CREATE TABLE trace_settings (
    account_id TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL DEFAULT 0,
    literals INTEGER NOT NULL DEFAULT 0,  -- message literals in full (else elided)
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE TABLE trace_lines (
    id INTEGER PRIMARY KEY,
    account_id TEXT NOT NULL,
    at TEXT NOT NULL,
    proto TEXT NOT NULL,                  -- imap|smtp
    dir TEXT NOT NULL,                    -- C (client) | S (server)
    level TEXT NOT NULL,                  -- info|debug
    line TEXT NOT NULL                    -- redacted where it was sent, escapes stripped
);
CREATE INDEX trace_lines_by_account ON trace_lines(account_id, id);
"#,
    // 12 (issue 18, many hosts): the installation's shared settings as one TOML document with
    // a version (PostgreSQL only; SQLite homes keep them in config.toml), and the check of the
    // one sealing key (a known value sealed with it, never the key).
    r#"
CREATE TABLE shared_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,             -- 0: not seeded yet
    doc TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE TABLE key_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    sealed TEXT NOT NULL,
    created_at TEXT NOT NULL,
    host TEXT NOT NULL
);
"#,
    // 13 (issue 18, operators as database roles): the operators an admin added (on SQLite
    // a name only: anyone who reads the file reads everything) and, per account, who may see
    // it (`*`: everyone, an account without an owner) — on PostgreSQL what row-level security
    // reads; here kept for a copy between engines.
    r#"
CREATE TABLE operators (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE account_access (
    account_id TEXT NOT NULL,
    operator TEXT NOT NULL,               -- a role name, or * for everyone
    standing TEXT NOT NULL,               -- owner|shared
    PRIMARY KEY (account_id, operator)
);
CREATE INDEX account_access_by_operator ON account_access(operator, account_id);
"#,
    // 14 (issue 16, answers at 100k): per account, how many messages it has, how many of them
    // are unread and how many are in the triage queue (the queue's rule without the own
    // addresses, which are configuration: readers subtract those). `status` and the queue's
    // total read one row instead of counting 100k locations. Kept exact in the transaction of
    // every change: triggers for every writer, except that sync's bulk INSERT of locations
    // adds its own counts at commit. Deleting a folder or a message deletes its locations
    // first (while the rows the triggers look at still exist), so cascades are counted too.
    // `locations_fill_sort` (step 7) leaves the schema: every connection but sync's bulk
    // writer creates it as a TEMP trigger (`counts::FILL_TRIGGER`, with the counting added).
    // Any trigger on locations, even one whose WHEN is false, makes SQLite keep a statement
    // journal for each INSERT: every page the INSERT touches was copied into a temporary file
    // first — 40 KiB per message, twice the CPU of a first header sync.
    r#"
CREATE TABLE account_counts (
    account_id TEXT PRIMARY KEY,
    messages INTEGER NOT NULL DEFAULT 0,  -- distinct messages with a location in the account
    unread INTEGER NOT NULL DEFAULT 0,    -- … with an unseen location in it
    queued INTEGER NOT NULL DEFAULT 0     -- … in its triage queue (own addresses not subtracted)
);
INSERT INTO account_counts (account_id, messages, unread, queued)
SELECT a.account_id,
       (SELECT COUNT(DISTINCT message_id) FROM locations l WHERE l.account_id = a.account_id),
       (SELECT COUNT(DISTINCT message_id) FROM locations l WHERE l.account_id = a.account_id AND l.seen = 0),
       (SELECT COUNT(DISTINCT l.message_id) FROM locations l JOIN messages m ON m.id = l.message_id
         WHERE l.account_id = a.account_id
           AND l.folder_id NOT IN (SELECT id FROM folders WHERE role IN ('sent', 'trash', 'junk', 'drafts'))
           AND m.direction = 'in' AND m.customer_id IS NULL AND m.denied = 0 AND m.triage_state IS NULL)
FROM (SELECT DISTINCT account_id FROM locations) a;

DROP TRIGGER locations_fill_sort;
CREATE TRIGGER locations_count_delete AFTER DELETE ON locations
BEGIN
    UPDATE account_counts SET
        messages = messages - NOT EXISTS (SELECT 1 FROM locations o WHERE o.message_id = OLD.message_id
                    AND o.account_id = OLD.account_id),
        unread = unread - (OLD.seen = 0 AND NOT EXISTS (SELECT 1 FROM locations o WHERE o.message_id = OLD.message_id
                    AND o.account_id = OLD.account_id AND o.seen = 0)),
        queued = queued - (OLD.folder_id NOT IN (SELECT id FROM folders WHERE role IN ('sent', 'trash', 'junk', 'drafts'))
            AND EXISTS (SELECT 1 FROM messages m WHERE m.id = OLD.message_id AND m.direction = 'in'
                    AND m.customer_id IS NULL AND m.denied = 0 AND m.triage_state IS NULL)
            AND NOT EXISTS (SELECT 1 FROM locations o WHERE o.message_id = OLD.message_id
                    AND o.account_id = OLD.account_id
                    AND o.folder_id NOT IN (SELECT id FROM folders WHERE role IN ('sent', 'trash', 'junk', 'drafts'))))
    WHERE account_id = OLD.account_id;
END;
CREATE TRIGGER locations_count_seen AFTER UPDATE OF seen ON locations WHEN OLD.seen <> NEW.seen
BEGIN
    UPDATE account_counts SET unread = unread + (CASE WHEN NEW.seen = 0 THEN 1 ELSE -1 END)
    WHERE account_id = NEW.account_id
      AND NOT EXISTS (SELECT 1 FROM locations o WHERE o.message_id = NEW.message_id
                      AND o.account_id = NEW.account_id AND o.id <> NEW.id AND o.seen = 0);
END;
CREATE TRIGGER messages_count_queue AFTER UPDATE OF direction, customer_id, denied, triage_state ON messages
WHEN (OLD.direction = 'in' AND OLD.customer_id IS NULL AND OLD.denied = 0 AND OLD.triage_state IS NULL)
  IS NOT (NEW.direction = 'in' AND NEW.customer_id IS NULL AND NEW.denied = 0 AND NEW.triage_state IS NULL)
BEGIN
    UPDATE account_counts SET queued = queued + (CASE WHEN NEW.direction = 'in' AND NEW.customer_id IS NULL
            AND NEW.denied = 0 AND NEW.triage_state IS NULL THEN 1 ELSE -1 END)
    WHERE account_id IN (SELECT l.account_id FROM locations l WHERE l.message_id = NEW.id
        AND l.folder_id NOT IN (SELECT id FROM folders WHERE role IN ('sent', 'trash', 'junk', 'drafts')));
END;
CREATE TRIGGER messages_count_delete BEFORE DELETE ON messages
BEGIN
    DELETE FROM locations WHERE message_id = OLD.id;
END;
CREATE TRIGGER folders_count_delete BEFORE DELETE ON folders
BEGIN
    DELETE FROM locations WHERE folder_id = OLD.id;
END;
CREATE TRIGGER folders_count_role AFTER UPDATE OF role ON folders
WHEN (COALESCE(OLD.role, '') IN ('sent', 'trash', 'junk', 'drafts')) <> (COALESCE(NEW.role, '') IN ('sent', 'trash', 'junk', 'drafts'))
BEGIN
    UPDATE account_counts SET queued = (SELECT COUNT(DISTINCT l.message_id) FROM locations l JOIN messages m ON m.id = l.message_id
         WHERE l.account_id = NEW.account_id
           AND l.folder_id NOT IN (SELECT id FROM folders WHERE role IN ('sent', 'trash', 'junk', 'drafts'))
           AND m.direction = 'in' AND m.customer_id IS NULL AND m.denied = 0 AND m.triage_state IS NULL)
    WHERE account_id = NEW.account_id;
END;
"#,
    // 15 (issue 16, full offline mode): no merges for tombstones in the search index. Each
    // downloaded body replaces its message's header-only row (a DELETE, which the contentless
    // index keeps as a tombstone, then an INSERT), so in a full sync every older segment soon
    // holds more than FTS5's default 10 % of tombstones and is merged again and again, each
    // entry checked against them (`fts5MultiIterIsDeleted`: a quarter of a 20k full sync's
    // CPU). Left to the ordinary merges, which drop the dead entries as they go, indexing 20k
    // bodies took half the CPU, the index came out smaller and searches were as fast.
    r#"
INSERT INTO messages_fts (messages_fts, rank) VALUES ('deletemerge', 0);
"#,
    // 16 (issue 18, daemons across hosts): a lease carries its holder's host id (liveness by
    // pid only on the same host id), its own expiry (renewed by the holder's process; a holder
    // killed with -9 loses it when it runs out) and the group (a daemon or a console's
    // supervisor) that renews it. Running daemons register with their capacity, so each takes
    // its fair share. An account no daemon has a slot for says why it waits.
    r#"
ALTER TABLE leases ADD COLUMN holder_host_id TEXT NOT NULL DEFAULT '';
ALTER TABLE leases ADD COLUMN expires_at TEXT;   -- NULL: an older holder (heartbeat + 90 s)
ALTER TABLE leases ADD COLUMN holder_group TEXT;
CREATE TABLE daemons (
    id TEXT PRIMARY KEY,                 -- random, per daemon process
    host_id TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    max_accounts INTEGER,                -- NULL: no limit
    started_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
ALTER TABLE accounts ADD COLUMN waiting TEXT;  -- e.g. "waiting for a sync slot"; NULL: not
"#,
    // 17 (issue 16, matching nearly free): the mail matching has not examined yet is a table of
    // its own instead of `messages.crm_examined` (no longer read or written). Marking 100k
    // messages examined after a first sync rewrote every message row and the partial index
    // (~0.3 s, a third of matching against a small book); deleting their ids from this table
    // takes milliseconds. Sync's bulk writer adds a new message here in the same transaction
    // that stores it (unless an empty customer book makes it examined already).
    r#"
CREATE TABLE crm_pending (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE
);
INSERT INTO crm_pending (message_id) SELECT id FROM messages WHERE crm_examined = 0;
DROP INDEX messages_crm_pending;
"#,
    // 18 (issue 18, refusals audited): on PostgreSQL a function that audits an operator's
    // request for something row-level security hides from it (see schema_pg.rs). Nothing is
    // hidden on SQLite: the app audits every refusal itself.
    r#"
SELECT 1;
"#,
    // 19 (issue 16, matching nearly free): the outbound messages, which a first sync's bulk
    // matching decides by their recipients, found without scanning every row (27 ms at 100k).
    r#"
CREATE INDEX messages_outbound ON messages(id) WHERE direction = 'out';
"#,
];
