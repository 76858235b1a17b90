-- Top-N per key: ROW_NUMBER() in a subquery, filtered outside (the first 3 rows of each key in event-time order), 40 keys, 3000 rows
SELECT id, k, v, rn FROM (
  SELECT id, k, v, row_number() OVER (PARTITION BY k ORDER BY ts, id) AS rn FROM src
) AS ranked
WHERE rn <= 3
