-- Trims one stream as far as is safe, in one atomic step, so that no group can appear or move
-- between the check and the trim.
--
-- KEYS[1]    the stream
-- ARGV[1]    retention in ms: entries added longer ago than that by this server's clock (TIME) may
--            go; the cutoff is never taken from a caller's wall clock, which may step
-- ARGV[2]    '1': ignore what groups still need (control runs only), else ''
-- ARGV[3..]  every group the topology declares for this stream
--
-- A declared group that is missing is created from the start (id 0) and nothing is trimmed: the
-- entries it has not processed are all still there. Otherwise the stream is trimmed (MINID ~)
-- below the oldest id any group still needs: its oldest pending entry, or the last one it read
-- (kept, which costs one entry and needs no arithmetic). Ids are compared as strings of digits,
-- never as Lua numbers (a 64-bit part does not fit a double). Returns the number of entries
-- removed, or -1 when groups were created.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end

-- a < b for two decimal strings without leading zeros
local function less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end

local function older(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if ams ~= bms then
    if less(ams, bms) then return a end
    return b
  end
  if less(bseq, aseq) then return b end
  return a
end

local present, floor = {}, nil
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
  present[info['name']] = true
  local need = info['last-delivered-id']
  if tonumber(info['pending']) > 0 then
    local summary = redis.call('XPENDING', KEYS[1], info['name'])
    if summary[2] then need = older(summary[2], need) end
  end
  floor = floor and older(floor, need) or need
end

local created = false
for i = 3, #ARGV do
  if not present[ARGV[i]] then
    redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[i], '0')
    created = true
  end
end
if created then
  return -1
end
local server_time = redis.call('TIME')  -- a script's effects are replicated (Redis >= 5), not the script
local now_ms = tonumber(server_time[1]) * 1000 + math.floor(tonumber(server_time[2]) / 1000)
local target = string.format('%.0f', math.max(now_ms - tonumber(ARGV[1]), 0)) .. '-0'
if floor and ARGV[2] ~= '1' then
  target = older(floor, target)
end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', target)
