-- hop 30 s / 90 s with rows exactly on slide boundaries and 1 ms before them
WITH h AS (
  SELECT *, unnest(generate_series((ts - 90000) // 30000 + 1, ts // 30000)) * 30000 AS ws
  FROM src)
SELECT k, ws, COUNT(*) AS n, SUM(v) AS s, MIN(v) AS lo
FROM h GROUP BY k, ws
