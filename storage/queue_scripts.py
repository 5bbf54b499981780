"""The send queue's Lua scripts (storage/queue.py): each runs atomically on the Redis server,
on the keys of the `{outq}` hash tag only, so it runs on a Redis Cluster as on one server."""

ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if ARGV[2] ~= '' then redis.call('SET', KEYS[4], ARGV[2]) end
redis.call('XADD', KEYS[2], '*', 'job', ARGV[1])
redis.call('SADD', KEYS[3], KEYS[2])
return 1
"""

# Moves one stream entry (ARGV[1], of job ARGV[2]) from KEYS[1] to KEYS[2], if it is still
# there: several processes can do it at once and the entry is moved once.
MOVE = """
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'job', ARGV[2])
redis.call('SADD', KEYS[3], KEYS[2])
redis.pcall('XACK', KEYS[1], ARGV[3], ARGV[1])  -- no group: nothing to let go
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
"""

# Returns 'go' (claimed now), 'recover' (claimed now, but an earlier try may have gone out:
# a dead sender's claim, or a try whose answer never came), 'busy' (someone is sending it right
# now) or 'done' (sent or failed for good). On 'recover', `unsure_ts` is the claim time from
# which the provider is asked: kept if set already (the earliest unknown try), else the claim
# being taken over. 'wrong': the job is not for this sender's channel (ARGV[4]): never sent
# by it, nor marked; a job queued without a channel (before it was asked for) is an SMS.
CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'done' end
local channel = redis.call('HGET', KEYS[1], 'channel')
if not channel or channel == '' then channel = 'sms' end
if channel ~= ARGV[4] then return 'wrong' end
if status == 'sent' or status == 'failed' then
  if redis.call('HGET', KEYS[1], 'recorded') == '0' then return 'record' end
  return 'done'
end
local now = tonumber(ARGV[1])
if status == 'claimed' or status == 'unsure' then
  local at = redis.call('HGET', KEYS[1], 'claimed_ts') or '0'
  if status == 'claimed' and now - tonumber(at) < tonumber(ARGV[3]) then return 'busy' end
  local unsure = redis.call('HGET', KEYS[1], 'unsure_ts')
  if not unsure or unsure == '' then unsure = at end
  redis.call('HSET', KEYS[1], 'status', 'claimed', 'claimed_ts', ARGV[1], 'owner', ARGV[2],
             'unsure_ts', unsure)
  return 'recover'
end
redis.call('HSET', KEYS[1], 'status', 'claimed', 'claimed_ts', ARGV[1], 'owner', ARGV[2])
return 'go'
"""

# Moves the jobs put off until now or earlier back into their own channel's stream (at most
# ARGV[2] of them; ARGV[3] is the keys' common start, `tala:{outq}`, so every key is in the
# one slot); a job whose hash is gone (erased) is dropped. Returns the not-before time of the
# next job still waiting, or nil.
DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local f = redis.call('HMGET', ARGV[3] .. ':job:' .. id, 'status', 'channel', 'lane')
  if f[1] then
    local channel = f[2]
    if not channel or channel == '' then channel = 'sms' end
    local stream = ARGV[3] .. ':' .. channel
    if f[3] == 'bulk' then stream = stream .. ':bulk' end
    redis.call('XADD', stream, '*', 'job', id)
    redis.call('SADD', KEYS[2], stream)
  end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if nxt[2] then return nxt[2] end
return false
"""

RATE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if nxt < now then nxt = now end
redis.call('SET', KEYS[1], tostring(nxt + interval), 'PX', 60000 + math.ceil(interval * 1000))
return tostring(nxt - now)
"""
