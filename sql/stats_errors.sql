-- Bad arguments and settings of the statistics functions give clear errors.
\set VERBOSITY default

-- unknown operation
SELECT * FROM agentmem.latency_histogram('hnsw_search');
SELECT * FROM agentmem.slo_check('recal', 10, 100);
SELECT * FROM agentmem.latency_histogram('');

-- NULLs
SELECT * FROM agentmem.latency_histogram(NULL);
SELECT * FROM agentmem.slo_check(NULL, 10, 100);
SELECT * FROM agentmem.slo_check('recall', NULL, 100);
SELECT * FROM agentmem.slo_check('recall', 10, NULL);

-- negative and NaN targets
SELECT * FROM agentmem.slo_check('recall', -1, 100);
SELECT * FROM agentmem.slo_check('recall', 10, -0.5);
SELECT * FROM agentmem.slo_check('recall', 'NaN', 100);

-- zero and infinite targets are valid
SELECT target, target_ms FROM agentmem.slo_check('recall', 0, 'Infinity');

-- settings
SET agentmem.track = 'everything';
SET agentmem.n_plus_one_log = 'loud';
SET agentmem.n_plus_one_threshold = -1;
SET agentmem.n_plus_one_burst_gap = '-5ms';
SET agentmem.max_statements = 10;
SHOW agentmem.track;

-- only superusers change what is tracked; latency_reset is not for PUBLIC
CREATE ROLE stats_plain_user;
SET ROLE stats_plain_user;
SET agentmem.track = 'none';
SET agentmem.n_plus_one_threshold = 3;
SET agentmem.n_plus_one_log = 'notice';
SELECT agentmem.latency_reset();
SELECT count(*) > 0 AS can_read_latency FROM agentmem.latency;
RESET ROLE;
DROP ROLE stats_plain_user;
