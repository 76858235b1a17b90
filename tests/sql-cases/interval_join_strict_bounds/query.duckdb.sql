-- interval join with strict and shifted bounds: b.ts >= c.ts - 1 ms AND b.ts < c.ts + 10 s (rows exactly on the upper bound do not match)
SELECT c.id AS click_id, b.id AS buy_id, b.amount
FROM clicks c JOIN buys b ON c.u = b.u
 AND b.ts >= c.ts - 1 AND b.ts < c.ts + 10000
