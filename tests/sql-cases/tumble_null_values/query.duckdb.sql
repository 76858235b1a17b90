-- tumble 30 s with 40 % NULL values and key 3 all NULL: SUM/MIN/MAX/AVG of no values are NULL, COUNT(v) 0
SELECT k, ts // 30000 * 30000 AS ws, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS s, MIN(v) AS lo, MAX(v) AS hi, AVG(v) AS a
FROM src GROUP BY k, ws
