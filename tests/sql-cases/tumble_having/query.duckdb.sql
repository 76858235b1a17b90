-- tumble 1 minute with HAVING COUNT(*) >= 5 and an expression over aggregates
SELECT k, ts // 60000 * 60000 AS ws, COUNT(*) AS n, SUM(v) * 2 + COUNT(*) AS score
FROM src GROUP BY k, ws HAVING COUNT(*) >= 5
