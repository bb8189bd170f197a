-- Every server process caches the live rollouts (with their releases' yanked flag) and the
-- machine credentials it has seen. These triggers announce a change of those rows on the
-- channel clp_changes (the payload is the table), so that every process listening drops its
-- cache at once instead of answering from it until the cache's time bound. NOTIFY is sent at
-- commit, so a process never reloads before the change is visible.
CREATE FUNCTION clp_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('clp_changes', TG_TABLE_NAME);
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER rollouts_changed AFTER INSERT OR UPDATE OR DELETE ON rollouts
  FOR EACH STATEMENT EXECUTE FUNCTION clp_notify_change();
--> statement-breakpoint
CREATE TRIGGER releases_yanked AFTER UPDATE OF yanked_at ON releases
  FOR EACH STATEMENT EXECUTE FUNCTION clp_notify_change();
--> statement-breakpoint
-- Polls rewrite last_seen_at, facts and installed every minute: those columns are not cached,
-- so they announce nothing.
CREATE TRIGGER machines_credentials_changed AFTER UPDATE OF credential_hash, revoked_at, tier, tags OR DELETE ON machines
  FOR EACH STATEMENT EXECUTE FUNCTION clp_notify_change();
--> statement-breakpoint
-- Release files are compressed already: storing chunks uncompressed saves futile CPU.
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
