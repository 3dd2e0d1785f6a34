-- Nothing to change on SQLite. PostgreSQL's migration 0011 adds `id` to the indexes the
-- outbox and the mail outbox claim their earliest due transfers from (`ORDER BY
-- next_attempt_at, id`); here `id` is the table's rowid, which every index entry ends with,
-- so `outbox_due` and `mail_outbox_due` already hold the rows in that order. Kept so that
-- both backends count the same migrations.
SELECT 1;
