-- OVER MIN/MAX/SUM of int64 values around 2^53 (9007199254740993 and neighbours, and negatives): exact, not through f64
SELECT id, COUNT(*) OVER w AS n, SUM(v) OVER w AS s, MIN(v) OVER w AS lo, MAX(v) OVER w AS hi,
       MIN(v) OVER r AS lo3, MAX(v) OVER r AS hi3, SUM(v) OVER r AS s3
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts RANGE BETWEEN 60000 PRECEDING AND CURRENT ROW),
       r AS (PARTITION BY k ORDER BY ts, id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)
