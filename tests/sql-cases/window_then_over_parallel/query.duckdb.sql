-- chain window -> OVER, both with parallelism 2 and key: k (NULL keys too)
WITH per_minute AS (SELECT k, ts // 60000 * 60000 AS window_start, COUNT(*) AS n FROM src GROUP BY k, window_start)
SELECT k, window_start AS ws, n, SUM(n) OVER w AS n_10m
FROM per_minute
WINDOW w AS (PARTITION BY k ORDER BY window_start RANGE BETWEEN 600000 PRECEDING AND CURRENT ROW)
