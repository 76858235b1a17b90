-- tumble 10 s per key over 4500 rows in batches of 64 (71 batches), 30 keys
SELECT k, ts // 10000 * 10000 AS ws, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS s, MIN(v) AS lo, MAX(v) AS hi, AVG(v) AS a
FROM src GROUP BY k, ws
