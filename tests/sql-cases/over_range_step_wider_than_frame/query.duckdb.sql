-- OVER RANGE 30 s while each batch (1024 rows, 5 s apart) moves the watermark about 85 minutes: steps far wider than the frame
SELECT id, COUNT(*) OVER w AS n, COUNT(v) OVER w AS nv, SUM(v) OVER w AS s, MIN(v) OVER w AS lo, MAX(v) OVER w AS hi, AVG(v) OVER w AS a
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts
             RANGE BETWEEN 30000 PRECEDING AND CURRENT ROW)
