-- tumble over a shifted time: days starting at 05:00 UTC, tumble(ts - INTERVAL '5' HOUR, INTERVAL '1' DAY), 3 days of rows
SELECT k, (ts - 18000000) // 86400000 * 86400000 AS ws, COUNT(*) AS n, SUM(v) AS s
FROM src GROUP BY k, ws
