-- OVER RANGE UNBOUNDED PRECEDING with times rounded to 5 s (many ties: peers share one result)
SELECT id, COUNT(*) OVER w AS n, COUNT(v) OVER w AS nv, SUM(v) OVER w AS s, MIN(v) OVER w AS lo, MAX(v) OVER w AS hi, AVG(v) OVER w AS a
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts
             RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
