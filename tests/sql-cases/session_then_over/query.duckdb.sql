-- chain session -> OVER: sessions (30 s gap) per key, then per key a 10-minute RANGE count and sum over session starts
WITH o AS (
  SELECT *, CASE WHEN ts - LAG(ts) OVER (PARTITION BY k ORDER BY ts) < 30000 THEN 0 ELSE 1 END AS starts FROM src),
s AS (SELECT *, SUM(starts) OVER (PARTITION BY k ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM o),
sessions AS (SELECT k, MIN(ts) AS window_start, COUNT(*) AS n FROM s GROUP BY k, sid)
SELECT k, window_start AS ws, n, COUNT(*) OVER w AS sessions_10m, SUM(n) OVER w AS rows_10m
FROM sessions
WINDOW w AS (PARTITION BY k ORDER BY window_start RANGE BETWEEN 600000 PRECEDING AND CURRENT ROW)
