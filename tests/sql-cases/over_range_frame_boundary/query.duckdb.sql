-- Rows of a key exactly 60 s apart: a 1-minute RANGE frame includes the row exactly one frame back, a 2-minute one two rows back
SELECT id, COUNT(*) OVER w1 AS n1, SUM(v) OVER w1 AS s1, MIN(v) OVER w2 AS lo2, COUNT(*) OVER w2 AS n2
FROM src
WINDOW w1 AS (PARTITION BY k ORDER BY ts RANGE BETWEEN 60000 PRECEDING AND CURRENT ROW),
       w2 AS (PARTITION BY k ORDER BY ts RANGE BETWEEN 120000 PRECEDING AND CURRENT ROW)
