-- A stateless sql step computes a column (CASE, arithmetic) that the next step's OVER aggregates
WITH prep AS (SELECT id, k, ts, CASE WHEN v > 500 THEN v * 2 ELSE v - 1000 END AS w2 FROM src)
SELECT id, SUM(w2) OVER w AS s, MAX(w2) OVER w AS hi
FROM prep
WINDOW w AS (PARTITION BY k ORDER BY ts RANGE BETWEEN 60000 PRECEDING AND CURRENT ROW)
