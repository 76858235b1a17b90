-- OVER RANGE 2 minutes partitioned by a nullable utf8 key: NULL is its own partition, not ''
SELECT id, COUNT(*) OVER w AS n, COUNT(v) OVER w AS nv, SUM(v) OVER w AS s, MIN(v) OVER w AS lo, MAX(v) OVER w AS hi, AVG(v) OVER w AS a
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts
             RANGE BETWEEN 120000 PRECEDING AND CURRENT ROW)
