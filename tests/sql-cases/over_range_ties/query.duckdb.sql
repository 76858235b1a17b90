-- OVER RANGE 10 s, times rounded to 10 s: 3-5 tied rows per key and time; frame edges fall exactly on tied times
SELECT id, COUNT(*) OVER w AS n, COUNT(v) OVER w AS nv, SUM(v) OVER w AS s, MIN(v) OVER w AS lo, MAX(v) OVER w AS hi, AVG(v) OVER w AS a
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts
             RANGE BETWEEN 10000 PRECEDING AND CURRENT ROW)
