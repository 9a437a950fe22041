-- Scenario 2, batched: the same 100 queries as recall_loop.sql (query ids
-- :s .. :s+99) answered by one agentmem.recall_batch call, k = 10.
\set s random(0, 899)
SELECT query_no, rank, id, content, distance
  FROM agentmem.recall_batch('pgb',
       ARRAY(SELECT q FROM pgb_queries WHERE id >= :s AND id < :s + 100 ORDER BY id),
       10);
