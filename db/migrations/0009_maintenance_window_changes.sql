-- Polls answer each machine's maintenance window from every process's memory (beside the live
-- rollouts): a window set or cleared through one process empties the others' caches at once.
CREATE TRIGGER maintenance_windows_changed AFTER INSERT OR UPDATE OR DELETE ON maintenance_windows
  FOR EACH STATEMENT EXECUTE FUNCTION clp_notify_change();
