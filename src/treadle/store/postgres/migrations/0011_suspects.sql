-- Suspects (ADR 0024): queued jobs whose worker died under them (`crashes` set). Normal
-- claims leave them out; an idle worker looks for them here and runs one alone. Partial:
-- it holds only the few suspects, so the idle look is one cheap indexed read.
CREATE INDEX treadle_jobs_suspects ON treadle_jobs (run_at)
    WHERE status = 'queued' AND crashes IS NOT NULL;
