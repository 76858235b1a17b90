-- OVER RANGE 5 minutes with parallelism 2, key: k (4000 rows, 50 keys)
SELECT id, COUNT(*) OVER w AS n, COUNT(v) OVER w AS nv, SUM(v) OVER w AS s, MIN(v) OVER w AS lo, MAX(v) OVER w AS hi, AVG(v) OVER w AS a
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts
             RANGE BETWEEN 300000 PRECEDING AND CURRENT ROW)
