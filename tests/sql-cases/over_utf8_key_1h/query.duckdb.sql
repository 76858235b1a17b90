-- OVER RANGE 1 hour per utf8 card id, 2000 rows 10 s apart, 30 cards
SELECT id, COUNT(*) OVER w AS n, COUNT(v) OVER w AS nv, SUM(v) OVER w AS s, MIN(v) OVER w AS lo, MAX(v) OVER w AS hi, AVG(v) OVER w AS a
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts
             RANGE BETWEEN 3600000 PRECEDING AND CURRENT ROW)
