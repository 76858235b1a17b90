-- tumble 1 minute MIN/MAX/SUM of int64 values around 2^53: exact
SELECT k, ts // 60000 * 60000 AS ws, COUNT(*) AS n, SUM(v) AS s, MIN(v) AS lo, MAX(v) AS hi
FROM src GROUP BY k, ws
