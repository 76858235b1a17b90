-- OVER RANGE 1 minute with 30 % NULL values and key 4 all NULL: COUNT(v), SUM/MIN/MAX/AVG skip NULLs (NULL when the frame has none)
SELECT id, COUNT(*) OVER w AS n, COUNT(v) OVER w AS nv, SUM(v) OVER w AS s, MIN(v) OVER w AS lo, MAX(v) OVER w AS hi, AVG(v) OVER w AS a
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts
             RANGE BETWEEN 60000 PRECEDING AND CURRENT ROW)
