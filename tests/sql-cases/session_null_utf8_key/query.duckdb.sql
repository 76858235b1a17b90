-- session windows (1 minute gap) by a nullable utf8 key: NULL and '' are separate keys
WITH o AS (
  SELECT *, CASE WHEN ts - LAG(ts) OVER (PARTITION BY k ORDER BY ts) < 60000 THEN 0 ELSE 1 END AS starts
  FROM src),
s AS (SELECT *, SUM(starts) OVER (PARTITION BY k ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM o)
SELECT k, MIN(ts) AS ws, MAX(ts) + 60000 AS we, COUNT(*) AS n, SUM(v) AS s
FROM s GROUP BY k, sid
