CREATE TABLE "maintenance_windows" (
	"target" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"name" text NOT NULL,
	"spec" text NOT NULL,
	"updated_by" text NOT NULL,
	"updated_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhook_deliveries" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"event" text NOT NULL,
	"rollout_id" text NOT NULL,
	"url" text NOT NULL,
	"payload" jsonb NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_at" timestamp with time zone NOT NULL,
	"delivered_at" timestamp with time zone,
	"abandoned_at" timestamp with time zone,
	"last_error" text,
	"created_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "reports" ADD COLUMN "scheduled_for" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "rollout_machines" ADD COLUMN "waiting_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "rollout_machines" ADD COLUMN "silent_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "rollout_machines" ADD COLUMN "retry_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "rollouts" ADD COLUMN "max_failures" integer;--> statement-breakpoint
ALTER TABLE "rollouts" ADD COLUMN "silence_timeout_seconds" integer DEFAULT 172800 NOT NULL;--> statement-breakpoint
ALTER TABLE "rollouts" ADD COLUMN "completion_window_seconds" integer DEFAULT 259200 NOT NULL;--> statement-breakpoint
ALTER TABLE "rollouts" ADD COLUMN "approved_stage" integer;--> statement-breakpoint
ALTER TABLE "rollouts" ADD COLUMN "waiting_gate" text;--> statement-breakpoint
ALTER TABLE "rollouts" ADD COLUMN "warned_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "webhook_deliveries_due_idx" ON "webhook_deliveries" USING btree ("next_at") WHERE delivered_at is null and abandoned_at is null;--> statement-breakpoint
CREATE INDEX "rollout_machines_unanswered_idx" ON "rollout_machines" USING btree ("rollout_id","offered_at") WHERE apply_outcome is null;