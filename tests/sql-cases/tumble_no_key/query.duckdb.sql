-- tumble 20 s without keys: one global group per window
SELECT ts // 20000 * 20000 AS ws, COUNT(*) AS n, SUM(v) AS s, MAX(v) AS hi
FROM src GROUP BY ws
