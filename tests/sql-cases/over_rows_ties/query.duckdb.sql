-- OVER ROWS 2 PRECEDING with tied times: ties in arrival order (DuckDB: ORDER BY ts, id)
SELECT id, COUNT(*) OVER w AS n, COUNT(v) OVER w AS nv, SUM(v) OVER w AS s, MIN(v) OVER w AS lo, MAX(v) OVER w AS hi, AVG(v) OVER w AS a
FROM src
WINDOW w AS (PARTITION BY k ORDER BY ts, id
             ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)
