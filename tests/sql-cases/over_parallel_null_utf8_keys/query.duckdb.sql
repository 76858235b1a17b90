-- OVER RANGE 1 minute with parallelism 3, key: k over utf8 keys with NULL and ''
SELECT id, COUNT(*) OVER w AS n, COUNT(v) OVER w AS nv, SUM(v) OVER w AS s, MIN(v) OVER w AS lo, MAX(v) OVER w AS hi, AVG(v) OVER w AS a
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts
             RANGE BETWEEN 60000 PRECEDING AND CURRENT ROW)
