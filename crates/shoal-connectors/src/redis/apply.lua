-- Apply one staged epoch of a Redis sink task: atomically (Redis runs a
-- script alone) and at most once (the task's marker records the last epoch
-- applied). Rows whose key holds something other than a hash are skipped
-- and reported; they are found before anything is written, so an epoch is
-- never applied in part.
--
-- KEYS[1]  the sink's marker hash: task -> last epoch applied
-- KEYS[2]  the staged epoch: a list of JSON arrays [key, value1, value2, ...]
-- KEYS[3]  the sink's set of staged epochs (members "task|epoch")
-- ARGV[1]  task             ARGV[2]  epoch
-- ARGV[3]  field names, a JSON array (value i of a row is field i)
-- ARGV[4]  ttl in ms, 0 for none
-- ARGV[5]  this epoch's member of KEYS[3]
-- ARGV[6]  "1": keep a marker (checkpointed runs); "0": apply regardless
--
-- Returns {rows in the epoch (-1: applied before), bad row, its key's type, ...}.
local marker = ARGV[6] == '1'
local done = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
local epoch = tonumber(ARGV[2])
local result = {-1}
if not marker or done < epoch then
  local fields = cjson.decode(ARGV[3])
  local ttl = tonumber(ARGV[4])
  local n = redis.call('LLEN', KEYS[2])
  local bad = {}
  local step = 1000
  for first = 0, n - 1, step do
    local rows = redis.call('LRANGE', KEYS[2], first, first + step - 1)
    for i, r in ipairs(rows) do
      local key = cjson.decode(r)[1]
      local t = redis.call('TYPE', key).ok
      if t ~= 'hash' and t ~= 'none' then
        bad[first + i - 1] = t
        result[#result + 1] = r
        result[#result + 1] = t
      end
    end
  end
  for first = 0, n - 1, step do
    local rows = redis.call('LRANGE', KEYS[2], first, first + step - 1)
    for i, r in ipairs(rows) do
      if not bad[first + i - 1] then
        local row = cjson.decode(r)
        local key = row[1]
        local set, unset = {}, {}
        for j, f in ipairs(fields) do
          local v = row[j + 1]
          if v == cjson.null then
            unset[#unset + 1] = f
          else
            set[#set + 1] = f
            set[#set + 1] = v
          end
        end
        if #set > 0 then redis.call('HSET', key, unpack(set)) end
        if #unset > 0 then redis.call('HDEL', key, unpack(unset)) end
        if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
      end
    end
  end
  result[1] = n
  if marker then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[5])
return result
