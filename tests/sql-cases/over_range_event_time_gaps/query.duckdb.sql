-- OVER RANGE 10 minutes over bursts of 200 rows separated by 2-hour gaps in event time (frames expire across the gap)
SELECT id, COUNT(*) OVER w AS n, COUNT(v) OVER w AS nv, SUM(v) OVER w AS s, MIN(v) OVER w AS lo, MAX(v) OVER w AS hi, AVG(v) OVER w AS a
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts
             RANGE BETWEEN 600000 PRECEDING AND CURRENT ROW)
