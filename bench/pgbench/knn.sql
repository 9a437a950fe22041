-- Scenario 1: one KNN search per transaction.  A random query vector is
-- picked by id from pgb_queries (the 1,000 GloVe query words, never in the
-- base set); the ten nearest of pgb_items by cosine distance come back
-- through the hnsw index (hnsw.ef_search at its default, 40).
\set qid random(0, 999)
SELECT id FROM pgb_items
 ORDER BY embedding <=> (SELECT q FROM pgb_queries WHERE id = :qid)
 LIMIT 10;
