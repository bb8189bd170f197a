CREATE TABLE "rollout_machines" (
	"rollout_id" text NOT NULL,
	"machine_id" text NOT NULL,
	"offered_at" timestamp with time zone NOT NULL,
	"apply_outcome" text,
	"apply_at" timestamp with time zone,
	"apply_report_id" text,
	"revert_outcome" text,
	"revert_at" timestamp with time zone,
	"revert_report_id" text,
	CONSTRAINT "rollout_machines_rollout_id_machine_id_pk" PRIMARY KEY("rollout_id","machine_id")
);
--> statement-breakpoint
ALTER TABLE "rollout_machines" ADD CONSTRAINT "rollout_machines_rollout_id_rollouts_id_fk" FOREIGN KEY ("rollout_id") REFERENCES "public"."rollouts"("id") ON DELETE no action ON UPDATE no action;