-- tumble 1 minute per int64 key: COUNT/COUNT(v)/SUM/MIN/MAX/AVG
SELECT k, ts // 60000 * 60000 AS ws, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS s, MIN(v) AS lo, MAX(v) AS hi, AVG(v) AS a
FROM src GROUP BY k, ws
