-- Trims one stream as far as is safe, in one atomic step, so that no group can appear or move
-- between the check and the trim.
--
-- KEYS[1]    the stream
-- ARGV[1]    cutoff id: entries older than it may go (retention)
-- ARGV[2]    '1': ignore what groups still need (control runs only), else ''
-- ARGV[3..]  every group the topology declares for this stream
--
-- A declared group that is missing is created from the start (id 0) and nothing is trimmed: the
-- entries it has not processed are all still there. Otherwise the stream is trimmed (MINID ~)
-- below the oldest id any group still needs: its oldest pending entry, or the entry after the
-- last one it read. Returns the number of entries removed, or -1 when groups were created.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function older(a, b)
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  if ams < bms or (ams == bms and aseq <= bseq) then return a end
  return b
end

local function after(id)
  local ms, seq = parse(id)
  return ms .. '-' .. (seq + 1)
end

local present, floor = {}, nil
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
  present[info['name']] = true
  local need = after(info['last-delivered-id'])
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
local target = ARGV[1]
if floor and ARGV[2] ~= '1' then
  target = older(floor, target)
end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', target)
