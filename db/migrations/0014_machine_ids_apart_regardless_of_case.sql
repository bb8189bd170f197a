-- Machine ids are told apart regardless of case: enrollments racing with ids that differ only in
-- case must not both get in (the enrollment's insert does nothing on a conflict with any unique
-- index, and answers 409), and the look-alike check reads this index instead of every machine.
-- A database that already holds such look-alikes (enrolled before the check existed) keeps them:
-- it gets the same index without uniqueness, and a warning naming what to do.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM machines GROUP BY lower(id) HAVING count(*) > 1) THEN
    RAISE WARNING 'machine ids that differ only in case are enrolled (select id from machines where lower(id) in (select lower(id) from machines group by 1 having count(*) > 1)); enrollments racing with such ids can both get in until only one of each is left and machines_id_lower_idx is replaced by a unique index on lower(id)';
    CREATE INDEX machines_id_lower_idx ON machines (lower(id));
  ELSE
    CREATE UNIQUE INDEX machines_id_lower_unique ON machines (lower(id));
  END IF;
END $$;
