-- chain hop -> OVER: 2-minute windows every minute, then per key a running (RANGE UNBOUNDED) sum over window_start
WITH h AS (SELECT *, unnest(generate_series((ts - 120000) // 60000 + 1, ts // 60000)) * 60000 AS window_start FROM src),
hops AS (SELECT k, window_start, COUNT(*) AS n FROM h GROUP BY k, window_start)
SELECT k, window_start AS ws, n, SUM(n) OVER w AS running
FROM hops
WINDOW w AS (PARTITION BY k ORDER BY window_start RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
