-- max_delay 0, batches of 1, in-order input with many tied times: a row at exactly the watermark is on time (lateness is ts < watermark)
SELECT id, COUNT(*) OVER w AS n, COUNT(v) OVER w AS nv, SUM(v) OVER w AS s, MIN(v) OVER w AS lo, MAX(v) OVER w AS hi, AVG(v) OVER w AS a
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts
             RANGE BETWEEN 10000 PRECEDING AND CURRENT ROW)
