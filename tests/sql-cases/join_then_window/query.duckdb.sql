-- chain join -> window: buys attributed to a click (10 s), counted and summed per user per minute of the buy
WITH attributed AS (
  SELECT c.u, c.id AS click_id, b.ts, b.amount
  FROM clicks c JOIN buys b ON c.u = b.u AND b.ts BETWEEN c.ts AND c.ts + 10000)
SELECT u, ts // 60000 * 60000 AS ws, COUNT(*) AS n, SUM(amount) AS total
FROM attributed GROUP BY u, ws
