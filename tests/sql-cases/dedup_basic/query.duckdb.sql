-- dedup within 1 minute per key: repeats come in clusters (< 40 s wide, >= 140 s apart), arriving out of order; the first arrival of each cluster is kept
WITH o AS (
  SELECT *, CASE WHEN ts - LAG(ts) OVER (PARTITION BY k ORDER BY ts) < 120000 THEN 0 ELSE 1 END AS starts FROM src),
c AS (SELECT *, SUM(starts) OVER (PARTITION BY k ORDER BY ts ROWS UNBOUNDED PRECEDING) AS cluster FROM o),
kept AS (SELECT * FROM c QUALIFY ROW_NUMBER() OVER (PARTITION BY k, cluster ORDER BY id) = 1)
SELECT id, k, v, ts FROM kept
