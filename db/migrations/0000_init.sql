CREATE TABLE "admin_tokens" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"token_hash" text NOT NULL,
	"role" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "admin_tokens_token_hash_unique" UNIQUE("token_hash")
);
--> statement-breakpoint
CREATE TABLE "enrollment_tokens" (
	"id" text PRIMARY KEY NOT NULL,
	"token_hash" text NOT NULL,
	"tier" text NOT NULL,
	"tags" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"uses_left" integer NOT NULL,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "enrollment_tokens_token_hash_unique" UNIQUE("token_hash")
);
--> statement-breakpoint
CREATE TABLE "machines" (
	"id" text PRIMARY KEY NOT NULL,
	"credential_hash" text NOT NULL,
	"hostname" text NOT NULL,
	"arch" text NOT NULL,
	"os_id" text NOT NULL,
	"os_version" text DEFAULT '' NOT NULL,
	"facts" jsonb NOT NULL,
	"tier" text NOT NULL,
	"tags" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"enrolled_at" timestamp with time zone NOT NULL,
	"last_seen_at" timestamp with time zone,
	"installed" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "machines_credential_hash_unique" UNIQUE("credential_hash")
);
--> statement-breakpoint
CREATE TABLE "promotions" (
	"release_id" text NOT NULL,
	"tier" text NOT NULL,
	"promoted_by" text NOT NULL,
	"promoted_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "promotions_release_id_tier_pk" PRIMARY KEY("release_id","tier")
);
--> statement-breakpoint
CREATE TABLE "releases" (
	"id" text PRIMARY KEY NOT NULL,
	"sha256" text NOT NULL,
	"name" text NOT NULL,
	"series" text NOT NULL,
	"version" text NOT NULL,
	"arch" text NOT NULL,
	"meta" jsonb NOT NULL,
	"signer_key_id" text NOT NULL,
	"size" bigint NOT NULL,
	"uploaded_by" text NOT NULL,
	"uploaded_at" timestamp with time zone DEFAULT now() NOT NULL,
	"yanked_at" timestamp with time zone,
	"yanked_by" text,
	CONSTRAINT "releases_sha256_unique" UNIQUE("sha256")
);
--> statement-breakpoint
CREATE TABLE "reports" (
	"id" text PRIMARY KEY NOT NULL,
	"machine_id" text NOT NULL,
	"release_id" text,
	"rollout_id" text,
	"name" text NOT NULL,
	"sha256" text,
	"status" text NOT NULL,
	"error_code" text,
	"log" text,
	"at" timestamp with time zone NOT NULL,
	"received_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "rollout_audit" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"rollout_id" text NOT NULL,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "rollout_counters" (
	"rollout_id" text PRIMARY KEY NOT NULL,
	"applied" integer DEFAULT 0 NOT NULL,
	"failed" integer DEFAULT 0 NOT NULL,
	"reverted" integer DEFAULT 0 NOT NULL,
	"revert_failed" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "rollouts" (
	"id" text PRIMARY KEY NOT NULL,
	"release_id" text NOT NULL,
	"tier" text NOT NULL,
	"selector" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"stages" jsonb NOT NULL,
	"current_stage" integer DEFAULT 0 NOT NULL,
	"stage_started_at" timestamp with time zone NOT NULL,
	"state" text NOT NULL,
	"max_failure_rate" double precision NOT NULL,
	"min_reports" integer NOT NULL,
	"halt_reason" text,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tiers" (
	"name" text PRIMARY KEY NOT NULL,
	"position" integer NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "enrollment_tokens" ADD CONSTRAINT "enrollment_tokens_tier_tiers_name_fk" FOREIGN KEY ("tier") REFERENCES "public"."tiers"("name") ON DELETE no action ON UPDATE cascade;--> statement-breakpoint
ALTER TABLE "machines" ADD CONSTRAINT "machines_tier_tiers_name_fk" FOREIGN KEY ("tier") REFERENCES "public"."tiers"("name") ON DELETE no action ON UPDATE cascade;--> statement-breakpoint
ALTER TABLE "promotions" ADD CONSTRAINT "promotions_release_id_releases_id_fk" FOREIGN KEY ("release_id") REFERENCES "public"."releases"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "promotions" ADD CONSTRAINT "promotions_tier_tiers_name_fk" FOREIGN KEY ("tier") REFERENCES "public"."tiers"("name") ON DELETE no action ON UPDATE cascade;--> statement-breakpoint
ALTER TABLE "rollout_audit" ADD CONSTRAINT "rollout_audit_rollout_id_rollouts_id_fk" FOREIGN KEY ("rollout_id") REFERENCES "public"."rollouts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "rollout_counters" ADD CONSTRAINT "rollout_counters_rollout_id_rollouts_id_fk" FOREIGN KEY ("rollout_id") REFERENCES "public"."rollouts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "rollouts" ADD CONSTRAINT "rollouts_release_id_releases_id_fk" FOREIGN KEY ("release_id") REFERENCES "public"."releases"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "rollouts" ADD CONSTRAINT "rollouts_tier_tiers_name_fk" FOREIGN KEY ("tier") REFERENCES "public"."tiers"("name") ON DELETE no action ON UPDATE cascade;--> statement-breakpoint
CREATE INDEX "machines_tier_idx" ON "machines" USING btree ("tier");--> statement-breakpoint
CREATE INDEX "machines_hostname_idx" ON "machines" USING btree ("hostname");--> statement-breakpoint
CREATE INDEX "releases_name_idx" ON "releases" USING btree ("name");--> statement-breakpoint
CREATE INDEX "releases_series_idx" ON "releases" USING btree ("series");--> statement-breakpoint
CREATE INDEX "reports_rollout_idx" ON "reports" USING btree ("rollout_id","received_at");--> statement-breakpoint
CREATE INDEX "reports_machine_idx" ON "reports" USING btree ("machine_id","received_at");--> statement-breakpoint
CREATE INDEX "rollout_audit_rollout_idx" ON "rollout_audit" USING btree ("rollout_id","id");--> statement-breakpoint
CREATE INDEX "rollouts_state_tier_idx" ON "rollouts" USING btree ("state","tier");--> statement-breakpoint
CREATE INDEX "rollouts_release_idx" ON "rollouts" USING btree ("release_id");