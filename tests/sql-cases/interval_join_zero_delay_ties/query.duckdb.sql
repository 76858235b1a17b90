-- interval join with max_delay 0 on in-order inputs with tied times (buys at exactly click time and click + 10 s)
SELECT c.id AS click_id, b.id AS buy_id, c.u, c.ts AS click_ts, b.ts AS buy_ts, b.amount
FROM clicks c JOIN buys b ON c.u = b.u
 AND b.ts BETWEEN c.ts AND c.ts + 10000
