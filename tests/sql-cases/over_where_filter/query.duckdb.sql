-- WHERE before an OVER window: only rows with v not divisible by 3 are in frames and output
SELECT id, COUNT(*) OVER w AS n, SUM(v) OVER w AS s
FROM src WHERE v % 3 <> 0
WINDOW w AS (PARTITION BY k ORDER BY ts RANGE BETWEEN 120000 PRECEDING AND CURRENT ROW)
