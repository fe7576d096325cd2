-- Commits one handler's writes as one atomic step: all of them or none are visible.
--
-- Every key the script touches is declared in KEYS (a Redis Cluster routes by them and refuses
-- keys of another slot; shoplib.store.partitions keeps all of one commit in one slot):
-- KEYS       the once key (when ARGV[1] is '1'), then the consumed stream (when ARGV[3] is '1'),
--            then every key the writes name, each once
-- ARGV[1]    '1': KEYS[1] is the "once" key, written with NX; if it already exists, the effect
--            happened before, nothing else is written (only the ack below), and the script returns 0
-- ARGV[2]    the once key's value
-- ARGV[3]    '1': this commit consumes a stream entry, acknowledged (XACK) in the same step
-- ARGV[4..5] group and entry id of that entry
-- ARGV[6]    '1': write only while that entry is still pending in its group, else return 0
--            (a dead letter is written once per group, even when two consumers race)
-- ARGV[7]    backlog bound: an XADD to a stream already holding this many entries refuses the
--            whole commit with a BACKLOG error (0: no bound; a self-capped XADD ... MAXLEN is exempt)
-- ARGV[8..]  the writes, each as <argc> <command> <key index> <args...> (SET, RPUSH, XADD, ZADD,
--            ZREM, INCR, HDEL: the key is KEYS[key index]) or <argc> PUBLISH <channel> <message>
--            (a channel is not a key); ZADDNOW <key index> [XX] <member> is a ZADD scored by this
--            server's clock in ms (TIME: the one clock every process compares "due" times on)
--
-- Nothing is written before every check has passed, and the first write is one that Redis may
-- refuse for lack of memory, so a refusal leaves nothing half done.
local FIRST_WRITE = 8
local has_once = ARGV[1] == '1'
local consumes = ARGV[3] == '1'
local stream = consumes and KEYS[has_once and 2 or 1]

local function ack()
  if consumes then
    redis.call('XACK', stream, ARGV[4], ARGV[5])
  end
end

local function still_pending()
  local found = redis.call('XPENDING', stream, ARGV[4], ARGV[5], ARGV[5], 1)
  return #found > 0
end

local function target(i)
  if ARGV[i + 1] == 'PUBLISH' then
    return ARGV[i + 2]
  end
  return KEYS[tonumber(ARGV[i + 2])]
end

local function full_stream()
  local limit = tonumber(ARGV[7])
  local i = FIRST_WRITE
  while limit > 0 and i <= #ARGV do
    if ARGV[i + 1] == 'XADD' and ARGV[i + 3] == '*' then
      local length = redis.call('XLEN', target(i))
      if length >= limit then
        return target(i) .. ' holds ' .. length .. ' entries, its bound'
      end
    end
    i = i + tonumber(ARGV[i]) + 1
  end
  return nil
end

if consumes and ARGV[6] == '1' and not still_pending() then
  return 0
end
local full = full_stream()
if full then
  return redis.error_reply('BACKLOG ' .. full)
end
if has_once and not redis.call('SET', KEYS[1], ARGV[2], 'NX') then
  ack()
  return 0
end

local server_ms = nil
local function now_ms()
  if not server_ms then
    local t = redis.call('TIME')  -- a script's effects are replicated (Redis >= 5), not the script
    server_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return server_ms
end

local i = FIRST_WRITE
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  if ARGV[i + 1] == 'ZADDNOW' then
    if n == 4 then  -- with a flag (XX)
      redis.call('ZADD', target(i), ARGV[i + 3], now_ms(), ARGV[i + 4])
    else
      redis.call('ZADD', target(i), now_ms(), ARGV[i + 3])
    end
  else
    redis.call(ARGV[i + 1], target(i), unpack(ARGV, i + 3, i + n))
  end
  i = i + n + 1
end
ack()
return 1
