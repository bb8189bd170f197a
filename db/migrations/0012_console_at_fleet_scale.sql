-- The console at fleet scale (bar P9): trigram indexes for the machines list's substring search
-- (pg_trgm: a trusted extension shipped with PostgreSQL, loaded into PGlite by db/src/database.ts),
-- a tier's machines in host-name order, and narrow indexes from which a rollout's page counts its
-- targeted machines without reading the wide machine rows.
CREATE EXTENSION IF NOT EXISTS pg_trgm;--> statement-breakpoint
DROP INDEX "machines_tier_idx";--> statement-breakpoint
CREATE INDEX "machines_tier_hostname_idx" ON "machines" USING btree ("tier","hostname","id");--> statement-breakpoint
CREATE INDEX "machines_hostname_trgm_idx" ON "machines" USING gin ("hostname" gin_trgm_ops);--> statement-breakpoint
CREATE INDEX "machines_id_trgm_idx" ON "machines" USING gin ("id" gin_trgm_ops);--> statement-breakpoint
CREATE INDEX "machines_tier_cohort_idx" ON "machines" USING btree ("tier","id","revoked_at","arch","os_id","tags");--> statement-breakpoint
CREATE INDEX "rollout_machines_silent_idx" ON "rollout_machines" USING btree ("rollout_id") WHERE apply_outcome is null and silent_at is not null;--> statement-breakpoint
CREATE INDEX "rollout_machines_retry_idx" ON "rollout_machines" USING btree ("rollout_id") WHERE apply_outcome is null and retry_at is not null;--> statement-breakpoint
CREATE INDEX "rollout_machines_outcome_idx" ON "rollout_machines" USING btree ("rollout_id","machine_id","apply_outcome","silent_at","waiting_until","retry_at");