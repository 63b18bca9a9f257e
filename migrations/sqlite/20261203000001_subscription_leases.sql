-- Subscription leases: with several replicas on one journal, the replica holding a
-- subscription's lease is the one that re-evaluates it, so a change is announced once.
-- A lease that is not renewed runs out, and another replica takes the subscription over.
ALTER TABLE recommendations ADD COLUMN lease_owner TEXT;
ALTER TABLE recommendations ADD COLUMN lease_until_ms INTEGER;
