-- Chain OVER -> OVER: per-key 1-minute count, then per-m 5-minute sum of those counts
WITH f1 AS (
  SELECT id, m, ts, COUNT(*) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN 60000 PRECEDING AND CURRENT ROW) AS n_k
  FROM src)
SELECT id, n_k, SUM(n_k) OVER w AS s_m, COUNT(*) OVER w AS n_m
FROM f1
WINDOW w AS (PARTITION BY m ORDER BY ts RANGE BETWEEN 300000 PRECEDING AND CURRENT ROW)
