"""The Lua scripts that make each multi-key step atomic in Redis (a worker may die between any two
commands, never inside a script).

Every key one script touches, declared in KEYS or built from a prefix in ARGV, has the same hash tag
(``keys.py``): one seller's run keys, or one app key's rate-limit keys. So each script runs on one
Redis Cluster slot.
"""

# The TTL a script gives a run key: the run's TTL (ARGV) while the run is open; once it is closed,
# no longer than its closed marker has left, so a late worker never keeps a closed run's keys.
_RUN_TTL = """
local function run_ttl(closed, ttl)
  local left = redis.call('TTL', closed)
  if left >= 0 and left < tonumber(ttl) then return math.max(left, 1) end
  return ttl
end
"""

# KEYS: current. ARGV: run_id, started_at, worker, ttl ms, current ttl s, the seller's runs prefix
# (``keys.runs_prefix``: a run's keys are ``<prefix><run_id>:<name>``).
# Joins the seller's current run, or starts one with the proposed id when there is none or the one
# named has closed. Returns the run id.
JOIN = """
local run = redis.call('GET', KEYS[1])
if (not run) or redis.call('EXISTS', ARGV[6] .. run .. ':closed') == 1 then
  run = ARGV[1]
  redis.call('SET', KEYS[1], run, 'EX', ARGV[5])
end
return run
"""

# KEYS: heartbeat, workers, closed, current. ARGV: worker, heartbeat ttl ms, run_id, current ttl s,
# run ttl s. A worker's heartbeat; it keeps the seller's current-run pointer alive while the run is
# open, in one step, so that it cannot re-point the seller at a run another worker has just closed.
BEAT = (
    _RUN_TTL
    + """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], run_ttl(KEYS[3], ARGV[5]))
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[4])
end
return 1
"""
)

# KEYS: closed, current, workers, every other named key of the run. ARGV: worker, run_id, closed
# ttl s, run key prefix. Returns 1 for the one worker that closes the run; it also clears the
# seller's current-run pointer if that still names this run, and makes every key of the run (its
# workers' heartbeats and leases too) expire within the closed ttl.
CLOSE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3]) then return 0 end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
local ttl = tonumber(ARGV[3])
local function soon(key)
  local left = redis.call('TTL', key)
  if left == -1 or left > ttl then redis.call('EXPIRE', key, ttl) end
end
for _, w in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  soon(ARGV[4] .. 'hb:' .. w)
  soon(ARGV[4] .. 'leases:' .. w)
end
for i = 3, #KEYS do soon(KEYS[i]) end
return 1
"""

# KEYS: meta, owner, done, dupefilter, queue, seq. After the closing worker has read what the run
# record needs: keeps the final listed/stored counts in meta and drops the per-item keys, which are
# most of a run's memory (about 130 bytes an item), so a fleet's closed runs cost Redis next to nothing
# for the hour they stay visible.
COMPACT = """
local listed, stored = redis.call('HLEN', KEYS[2]), redis.call('SCARD', KEYS[3])
redis.call('HSET', KEYS[1], 'listed_final', listed, 'stored_final', stored)
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
"""

# KEYS: meta, workers, heartbeat, closed. ARGV: started_at, worker, ttl ms, run ttl s, epoch.
# Returns {started_at, epoch} of the run (the epoch names this copy of the run's state in Redis).
REGISTER = (
    _RUN_TTL
    + """
local ttl = run_ttl(KEYS[4], ARGV[4])
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[1])
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[5])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
return {redis.call('HGET', KEYS[1], 'started_at'), redis.call('HGET', KEYS[1], 'epoch')}
"""
)

# KEYS: meta, current, closed. ARGV: run_id, started_at, new epoch, run ttl s, current ttl s.
# After Redis lost a run's state (restarted without persistence, failed over to an empty replica),
# the first worker to call this makes the run's state anew and gets {epoch, 1}: it redoes the
# listing. Later callers get {the epoch it made, 0}.
RECOVER = (
    _RUN_TTL
    + """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch then return {epoch, 0} end
redis.call('HSET', KEYS[1], 'started_at', ARGV[2], 'epoch', ARGV[3])
redis.call('EXPIRE', KEYS[1], run_ttl(KEYS[3], ARGV[4]))
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[5])
return {ARGV[3], 1}
"""
)

# KEYS: queue, dupefilter, seq, own leases, closed. ARGV: fingerprint ('' = unfiltered), priority,
# lease id, json payload, lease to release ('' = none), run ttl s. Returns 1 if queued.
PUSH = (
    _RUN_TTL
    + """
if ARGV[5] ~= '' then redis.call('HDEL', KEYS[4], ARGV[5]) end
local ttl = run_ttl(KEYS[5], ARGV[6])
if ARGV[1] ~= '' then
  if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
  redis.call('EXPIRE', KEYS[2], ttl)
end
local seq = redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], ttl)
redis.call('ZADD', KEYS[1], -tonumber(ARGV[2]) * 1e12 + seq, ARGV[3] .. '|' .. ARGV[4])
redis.call('EXPIRE', KEYS[1], ttl)
return 1
"""
)

# KEYS: queue, own leases, closed. ARGV: run ttl s. Moves the first request to this worker's leases.
POP = (
    _RUN_TTL
    + """
local item = redis.call('ZPOPMIN', KEYS[1])
if #item == 0 then return false end
redis.call('HSET', KEYS[2], item[1], item[2])
redis.call('EXPIRE', KEYS[2], run_ttl(KEYS[3], ARGV[1]))
return item[1]
"""
)

# KEYS: workers, queue, closed. ARGV: run key prefix, worker whose leases go back ('' = only dead
# ones), run ttl s. A worker is dead when its heartbeat key has expired. Returns the number of
# requests requeued.
RECLAIM = (
    _RUN_TTL
    + """
local moved = 0
for _, w in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if w == ARGV[2] or (ARGV[2] == '' and redis.call('EXISTS', ARGV[1] .. 'hb:' .. w) == 0) then
    local leases = ARGV[1] .. 'leases:' .. w
    local all = redis.call('HGETALL', leases)
    for i = 1, #all, 2 do
      redis.call('ZADD', KEYS[2], all[i + 1], all[i])
      moved = moved + 1
    end
    redis.call('DEL', leases)
    redis.call('SREM', KEYS[1], w)
  end
end
if moved > 0 then redis.call('EXPIRE', KEYS[2], run_ttl(KEYS[3], ARGV[3])) end
return moved
"""
)

# KEYS: workers, queue. ARGV: run key prefix. Returns {queued, leased by live or dead workers}.
PENDING = """
local leased = 0
for _, w in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  leased = leased + redis.call('HLEN', ARGV[1] .. 'leases:' .. w)
end
return {redis.call('ZCARD', KEYS[2]), leased}
"""

# KEYS: owner, closed. ARGV: page key, run ttl s, num_iid... Claims unclaimed ids for this listing
# page and returns every id this page owns, so a page processed again (after a crash) yields the
# same ids.
CLAIM = (
    _RUN_TTL
    + """
local mine = {}
for i = 3, #ARGV do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[1])
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then table.insert(mine, ARGV[i]) end
end
redis.call('EXPIRE', KEYS[1], run_ttl(KEYS[2], ARGV[2]))
return mine
"""
)

# KEYS: counters, done, closed. ARGV: run ttl s, n, n num_iids accounted for, then triples of
# counter name, 'i' (integer) or 'f' (float), the amount to add. A worker's counters and items.
COUNT = (
    _RUN_TTL
    + """
local ttl = run_ttl(KEYS[3], ARGV[1])
local n = tonumber(ARGV[2])
for i = 3, n + 2 do redis.call('SADD', KEYS[2], ARGV[i]) end
for i = n + 3, #ARGV, 3 do
  if ARGV[i + 1] == 'f' then
    redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 2])
  else
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 2])
  end
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return 1
"""
)

# KEYS: gcra, ban for the method, ban for the whole app, calls prefix (the script appends the
# second). ARGV: interval ms.
# Returns {ms to wait, reserved}: reserved 0 means a ban is in force (wait, then ask again);
# reserved 1 means a send slot is this worker's after waiting (GCRA over Redis server time).
THROTTLE = """
local ban = math.max(redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[3]), 0)
if ban > 0 then return {ban, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local wait = 0
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat < now then tat = now end
  wait = tat - now
  redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil(wait + interval) + 1000)
end
local second = KEYS[4] .. tostring(math.floor((now + wait) / 1000))
redis.call('INCR', second)
redis.call('EXPIRE', second, 120)
return {wait, 1}
"""

# KEYS: ban key. ARGV: ban ms. Sets or extends a ban; returns {the ms it added (for ban-wait stats),
# the ms that were left of the ban before (0: a new ban)}.
BAN = """
local left = math.max(redis.call('PTTL', KEYS[1]), 0)
local ms = tonumber(ARGV[1])
if ms > left then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
  return {ms - left, left}
end
return {0, left}
"""

# KEYS: send window (zset: member = one call, score = when it is known to have left, in ms of Redis
# time), the API's ban key, the app key's ban key. ARGV: cap, unique member, longest time (ms) a
# call may stay in flight. The last check before a call goes out. A ban in force returns its
# remaining ms, so a ban that began while the call waited for its GCRA slot or for this window
# still holds it back. A call counts from its approval until 1 s after its response came back
# (DONE), so at most `cap` calls can reach the API in any 1-second window, whatever delays an event
# loop or a busy machine put between the approval and the bytes on the wire (the API sees each call
# between the two). Until DONE, a call's score is its approval plus ARGV[3] (a worker that died
# with calls in flight holds their slots no longer). Returns ms to wait (0: recorded, send now).
WINDOW = """
local ban = math.max(redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[3]), 0)
if ban > 0 then return ban end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
  return math.ceil(math.min(oldest, now) + 1000 - now) + 1
end
local inflight = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + inflight, ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(inflight) + 2000)
return 0
"""

# KEYS: send window. ARGV: member, how long ago (ms) its response (or error) came back. The call
# counts until 1 s after that; a member no longer in the window is not added back.
DONE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('ZADD', KEYS[1], 'XX', now - tonumber(ARGV[2]), ARGV[1])
return 0
"""
