DROP INDEX "releases_name_idx";--> statement-breakpoint
CREATE UNIQUE INDEX "releases_name_unique" ON "releases" USING btree ("name");