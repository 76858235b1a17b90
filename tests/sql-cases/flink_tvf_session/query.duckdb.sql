-- session windows with a 30 s gap per key; steps of 29/30/31 s around the gap (a step of exactly 30 s splits)
WITH o AS (
  SELECT *, CASE WHEN ts - LAG(ts) OVER (PARTITION BY k ORDER BY ts) < 30000 THEN 0 ELSE 1 END AS starts
  FROM src),
s AS (SELECT *, SUM(starts) OVER (PARTITION BY k ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM o)
SELECT k, MIN(ts) AS ws, MAX(ts) + 30000 AS we, COUNT(*) AS n, SUM(v) AS s
FROM s GROUP BY k, sid
