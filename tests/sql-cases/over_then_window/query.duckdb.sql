-- chain OVER -> window: per-key 1-minute counts, then per key and 5 minutes their MAX and SUM
WITH feats AS (
  SELECT k, ts, COUNT(*) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN 60000 PRECEDING AND CURRENT ROW) AS n1m FROM src)
SELECT k, ts // 300000 * 300000 AS ws, COUNT(*) AS n, MAX(n1m) AS peak, SUM(n1m) AS total
FROM feats GROUP BY k, ws
