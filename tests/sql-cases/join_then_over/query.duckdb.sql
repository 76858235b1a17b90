-- chain join -> OVER: per user, a 1-minute RANGE count and sum of attributed buys, ordered by buy time
WITH attributed AS (
  SELECT c.u, b.id AS buy_id, c.id AS click_id, b.ts, b.amount
  FROM clicks c JOIN buys b ON c.u = b.u AND b.ts BETWEEN c.ts AND c.ts + 10000)
SELECT buy_id, click_id, COUNT(*) OVER w AS n_1m, SUM(amount) OVER w AS total_1m
FROM attributed
WINDOW w AS (PARTITION BY u ORDER BY ts RANGE BETWEEN 60000 PRECEDING AND CURRENT ROW)
