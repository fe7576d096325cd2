-- Commits one handler's writes as one atomic step: all of them or none are visible.
--
-- KEYS[1]    the "once" key: written with NX; if it already exists, the effect happened before,
--            nothing else is written (only the ack below), and the script returns 0.
-- ARGV[1]    the once key's value
-- ARGV[2..4] stream, group and entry id to XACK in the same step ('' when not consuming)
-- ARGV[5]    '1': write only while that entry is still pending in its group, else return 0
--            (a dead letter is written once per group, even when two consumers race)
-- ARGV[6]    backlog bound: an XADD to a stream already holding this many entries refuses the
--            whole commit with a BACKLOG error (0: no bound; a self-capped XADD ... MAXLEN is exempt)
-- ARGV[7..]  the writes, each as <argc> <command> <args...> (SET, RPUSH, XADD, ZADD, ZREM, PUBLISH)
--
-- Nothing is written before every check has passed, and the first write is one that Redis may
-- refuse for lack of memory, so a refusal leaves nothing half done.
-- Keys other than KEYS[1] are named in ARGV: fine on a single Redis, not on a cluster.
local FIRST_WRITE = 7

local function ack()
  if ARGV[2] ~= '' then
    redis.call('XACK', ARGV[2], ARGV[3], ARGV[4])
  end
end

local function still_pending()
  local found = redis.call('XPENDING', ARGV[2], ARGV[3], ARGV[4], ARGV[4], 1)
  return #found > 0
end

local function full_stream()
  local limit = tonumber(ARGV[6])
  local i = FIRST_WRITE
  while limit > 0 and i <= #ARGV do
    if ARGV[i + 1] == 'XADD' and ARGV[i + 3] == '*' then
      local length = redis.call('XLEN', ARGV[i + 2])
      if length >= limit then
        return ARGV[i + 2] .. ' holds ' .. length .. ' entries, its bound'
      end
    end
    i = i + tonumber(ARGV[i]) + 1
  end
  return nil
end

if ARGV[5] == '1' and not still_pending() then
  return 0
end
local full = full_stream()
if full then
  return redis.error_reply('BACKLOG ' .. full)
end
if KEYS[1] ~= '' and not redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  ack()
  return 0
end

local i = FIRST_WRITE
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
ack()
return 1
