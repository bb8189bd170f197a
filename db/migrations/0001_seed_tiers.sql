-- The default tiers, seeded once: operators may rename, reorder or add tiers afterwards.
INSERT INTO "tiers" ("name", "position", "description") VALUES
  ('edge', 0, 'first to receive a release'),
  ('beta', 1, 'after edge has been healthy'),
  ('stable', 2, 'the rest of the fleet')
ON CONFLICT ("name") DO NOTHING;
