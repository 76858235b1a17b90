-- hop 2 minutes / 5 minutes (panes of gcd = 1 minute), nullable values
WITH h AS (
  SELECT *, unnest(generate_series((ts - 300000) // 120000 + 1, ts // 120000)) * 120000 AS ws
  FROM src)
SELECT k, ws, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS s, MAX(v) AS hi
FROM h GROUP BY k, ws
