-- Every poll writes its machine's row (last seen, installed patches, facts). On a full page that
-- update cannot stay on its page and writes a new entry in each of the machines' seven indexes,
-- the two trigram ones included. With room left on each page most such updates are heap-only
-- ones that touch no index (bar P5: 1 % of them before, about half after). Existing rows move to
-- such pages the first time they are written.
ALTER TABLE "machines" SET (fillfactor = 70);
