-- Rollout counters used to count every report; from now on they count each machine the rollout
-- offered its release to once, by its latest outcome. Machines that reported for a rollout before
-- this change are taken as offered (nothing else recorded who was), and the counters are
-- recomputed from their latest outcomes, so that a halt decision after the upgrade reads the
-- same per-machine outcomes as one made later.
INSERT INTO rollout_machines (rollout_id, machine_id, offered_at)
SELECT r.rollout_id, r.machine_id, min(r.received_at)
FROM reports r JOIN rollouts ro ON ro.id = r.rollout_id
WHERE r.status IN ('applied', 'failed', 'reverted', 'revert-failed')
GROUP BY r.rollout_id, r.machine_id
ON CONFLICT DO NOTHING;
--> statement-breakpoint
UPDATE rollout_machines rm SET apply_outcome = l.status, apply_at = l.at, apply_report_id = l.id
FROM (
  SELECT DISTINCT ON (rollout_id, machine_id) rollout_id, machine_id, status, at, id
  FROM reports
  WHERE status IN ('applied', 'failed') AND rollout_id IS NOT NULL
  ORDER BY rollout_id, machine_id, at DESC, received_at DESC
) l
WHERE rm.rollout_id = l.rollout_id AND rm.machine_id = l.machine_id;
--> statement-breakpoint
UPDATE rollout_machines rm SET revert_outcome = l.status, revert_at = l.at, revert_report_id = l.id
FROM (
  SELECT DISTINCT ON (rollout_id, machine_id) rollout_id, machine_id, status, at, id
  FROM reports
  WHERE status IN ('reverted', 'revert-failed') AND rollout_id IS NOT NULL
  ORDER BY rollout_id, machine_id, at DESC, received_at DESC
) l
WHERE rm.rollout_id = l.rollout_id AND rm.machine_id = l.machine_id;
--> statement-breakpoint
UPDATE rollout_counters c SET
  applied = (SELECT count(*) FROM rollout_machines rm WHERE rm.rollout_id = c.rollout_id AND rm.apply_outcome = 'applied'),
  failed = (SELECT count(*) FROM rollout_machines rm WHERE rm.rollout_id = c.rollout_id AND rm.apply_outcome = 'failed'),
  reverted = (SELECT count(*) FROM rollout_machines rm WHERE rm.rollout_id = c.rollout_id AND rm.revert_outcome = 'reverted'),
  revert_failed = (SELECT count(*) FROM rollout_machines rm WHERE rm.rollout_id = c.rollout_id AND rm.revert_outcome = 'revert-failed');
