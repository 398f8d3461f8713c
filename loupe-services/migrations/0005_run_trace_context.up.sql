-- The W3C trace context (`traceparent`) in effect when a run was queued:
-- the request that started it, or the scheduler's tick. The runner that
-- claims the run continues that trace, so one trace shows the request, the
-- wait in the queue and the execution, whichever processes they ran in.
ALTER TABLE runs ADD COLUMN traceparent TEXT CHECK (traceparent IS NULL OR length(traceparent) = 55);
