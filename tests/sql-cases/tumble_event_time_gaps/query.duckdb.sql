-- tumble 5 minutes over bursts separated by 3-hour gaps (no empty windows emitted)
SELECT k, ts // 300000 * 300000 AS ws, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS s, MIN(v) AS lo, MAX(v) AS hi, AVG(v) AS a
FROM src GROUP BY k, ws
