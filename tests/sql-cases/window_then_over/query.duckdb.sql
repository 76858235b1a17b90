-- chain window -> OVER: per-key per-minute counts, then a 5-minute RANGE sum over window_start
WITH per_minute AS (
  SELECT k, ts // 60000 * 60000 AS window_start, COUNT(*) AS n, SUM(v) AS s FROM src GROUP BY k, window_start)
SELECT k, window_start AS ws, n, SUM(n) OVER w AS n_5m, MAX(s) OVER w AS max_s
FROM per_minute
WINDOW w AS (PARTITION BY k ORDER BY window_start RANGE BETWEEN 300000 PRECEDING AND CURRENT ROW)
