-- Removes the members of a consumer group that have been idle longer than
-- a threshold and hold no pending entries, in one step, so a member that
-- reads again meanwhile cannot lose entries to the removal (XGROUP
-- DELCONSUMER drops whatever a consumer still has pending).
-- KEYS: 1 the stream. ARGV: 1 group, 2 idle threshold (ms), 3 the caller's
-- own name (never removed).
-- Returns the names removed.
local removed = {}
for _, info in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local fields = {}
  for i = 1, #info, 2 do
    fields[info[i]] = info[i + 1]
  end
  -- 'inactive' (Redis 7.2+) counts from the last successful read; -1 when
  -- there was none, then 'idle' (since the last attempt) stands in.
  local idle = fields['inactive']
  if idle == nil or idle < 0 then
    idle = fields['idle']
  end
  if fields['name'] ~= ARGV[3] and fields['pending'] == 0
      and idle > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
    table.insert(removed, fields['name'])
  end
end
return removed
