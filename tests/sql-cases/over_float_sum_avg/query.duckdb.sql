-- OVER RANGE 5 minutes over float64 amounts (some NULL): SUM/AVG within float tolerance, MIN/MAX exact
SELECT id, COUNT(*) OVER w AS n, COUNT(v) OVER w AS nv, SUM(v) OVER w AS s, MIN(v) OVER w AS lo, MAX(v) OVER w AS hi, AVG(v) OVER w AS a
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts
             RANGE BETWEEN 300000 PRECEDING AND CURRENT ROW)
