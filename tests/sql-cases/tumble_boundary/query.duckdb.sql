-- Rows exactly on minute boundaries, 1 ms before and 1 ms after: [start, end) windows
SELECT k, ts // 60000 * 60000 AS ws, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS s, MIN(v) AS lo, MAX(v) AS hi, AVG(v) AS a
FROM src GROUP BY k, ws
