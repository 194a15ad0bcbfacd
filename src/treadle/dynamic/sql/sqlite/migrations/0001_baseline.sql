-- Dynamic workers' own migration track (ADR 0008), numbered from 1 by this package.
-- Their tables (treadle_dynamic_workers, treadle_kv) were created by the core migration
-- 0003_dynamic_workers, shipped before job kinds owned their SQL; shipped migrations never
-- change, so that one stays where it is and this track starts from it. The next change to
-- these tables is 0002 here, not a core migration.
SELECT 1;
