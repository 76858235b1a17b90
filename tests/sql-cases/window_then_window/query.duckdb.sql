-- chain window -> window: per-minute counts, then per 5 minutes of window_start their sum and the busiest minute
WITH per_minute AS (SELECT k, ts // 60000 * 60000 AS window_start, COUNT(*) AS n FROM src GROUP BY k, window_start)
SELECT k, window_start // 300000 * 300000 AS ws, SUM(n) AS n, MAX(n) AS busiest, COUNT(*) AS minutes
FROM per_minute GROUP BY k, ws
