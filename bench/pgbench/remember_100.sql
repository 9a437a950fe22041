-- Scenario 3, batched: the same 100 words and vectors as insert_single.sql
-- (query ids :s .. :s+99) stored by one agentmem.remember call, which
-- returns their ids.  One statement, one commit.
\set s random(0, 899)
SELECT count(*)
  FROM agentmem.remember('pgb',
       ARRAY(SELECT word FROM pgb_queries WHERE id >= :s AND id < :s + 100 ORDER BY id),
       ARRAY(SELECT q FROM pgb_queries WHERE id >= :s AND id < :s + 100 ORDER BY id));
