-- hop: 5-minute windows every minute, per key
WITH h AS (
  SELECT *, unnest(generate_series((ts - 300000) // 60000 + 1, ts // 60000)) * 60000 AS ws
  FROM src)
SELECT k, ws, COUNT(*) AS n, SUM(v) AS s, MIN(v) AS lo
FROM h GROUP BY k, ws
