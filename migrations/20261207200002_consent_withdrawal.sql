-- Consent can be withdrawn and given again without deleting the account (issue 21). While it is
-- withdrawn nothing new is stored; consent_timestamp keeps the latest consent given.
ALTER TABLE users ADD COLUMN consent_withdrawn_at timestamptz;
