-- ROW_NUMBER and LAG (1 and 3 back, a value and the event time) per key, NULL keys and values, 3000 rows
SELECT id, row_number() OVER w AS rn, LAG(v) OVER w AS prev_v, LAG(v, 3) OVER w AS prev3_v,
       LAG(ts) OVER w AS prev_ts, COUNT(*) OVER w2 AS n
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts, id),
       w2 AS (PARTITION BY k ORDER BY ts RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
