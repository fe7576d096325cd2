-- Commits one handler's writes as one atomic step: all of them or none are visible.
--
-- KEYS[1]  the "once" key: written with NX; if it already exists, the effect happened before,
--          nothing else is written (only the ack below), and the script returns 0.
-- ARGV[1]  the once key's value
-- ARGV[2..4] stream, group and entry id to XACK in the same step ('' when not consuming)
-- ARGV[5..]  the writes, each as <argc> <command> <args...> (SET, RPUSH, XADD, ZADD, ZREM, PUBLISH)
--
-- Keys other than KEYS[1] are named in ARGV: fine on a single Redis, not on a cluster.
local function ack()
  if ARGV[2] ~= '' then
    redis.call('XACK', ARGV[2], ARGV[3], ARGV[4])
  end
end

if KEYS[1] ~= '' and not redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  ack()
  return 0
end

local i = 5
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
ack()
return 1
