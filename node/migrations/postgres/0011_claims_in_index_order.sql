-- The outbox (and the mail outbox) claims the earliest due transfers, `ORDER BY
-- next_attempt_at, id LIMIT n`. On `(state, next_attempt_at)` alone PostgreSQL could not take
-- them in that order from the index (equal times are kept in the table's order there, not
-- by id), and every claim read every due transfer and sorted them for the first few: 1.6 ms
-- a claim of about ten with 5,500 due in a benchmark of 6,000 documents, 38 ms a claim of
-- eight (the sort spilling to disk) with 100,000 due, as after a neighbour's outage. With
-- `id` in the index a claim reads the due transfers in order and stops at the first it may
-- take (0.23 ms with 100,000 due); the store's claim turns sorting off for its transaction
-- so that the server takes this plan whatever its statistics say.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (state, next_attempt_at, id);
DROP INDEX mail_outbox_due;
CREATE INDEX mail_outbox_due ON mail_outbox (state, next_attempt_at, id);
