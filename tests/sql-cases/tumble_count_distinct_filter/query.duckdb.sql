-- tumble 1 minute COUNT(DISTINCT m) and SUM(v) FILTER (WHERE v > 500)
SELECT k, ts // 60000 * 60000 AS ws, COUNT(DISTINCT m) AS merchants, SUM(v) FILTER (WHERE v > 500) AS big_sum, COUNT(*) AS n
FROM src GROUP BY k, ws
