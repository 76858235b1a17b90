-- tumble 1 minute with parallelism 2, key: k (NULL keys too), 4000 rows
SELECT k, ts // 60000 * 60000 AS ws, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS s, MIN(v) AS lo, MAX(v) AS hi, AVG(v) AS a
FROM src GROUP BY k, ws
