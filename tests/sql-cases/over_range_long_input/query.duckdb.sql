-- OVER RANGE 10 minutes, 3800 rows (60 batches of 64), 40 keys, jitter ±3 s
SELECT id, COUNT(*) OVER w AS n, COUNT(v) OVER w AS nv, SUM(v) OVER w AS s, MIN(v) OVER w AS lo, MAX(v) OVER w AS hi, AVG(v) OVER w AS a
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts
             RANGE BETWEEN 600000 PRECEDING AND CURRENT ROW)
