-- tumble 10 s, max_delay 0, batches of 1, tied times on window starts: rows at the watermark are on time
SELECT k, ts // 10000 * 10000 AS ws, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS s, MIN(v) AS lo, MAX(v) AS hi, AVG(v) AS a
FROM src GROUP BY k, ws
