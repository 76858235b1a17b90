-- tumble 1 minute GROUP BY a nullable int64 key: NULL is its own group, not 0
SELECT k, ts // 60000 * 60000 AS ws, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS s, MIN(v) AS lo, MAX(v) AS hi, AVG(v) AS a
FROM src GROUP BY k, ws
