-- ANCHOR: script
-- A sliding-window log: admit when fewer than ARGV[1] requests were admitted
-- in the last ARGV[2] microseconds. KEYS[1] is the client's sorted set of
-- admission times. One script runs alone on the server, so no other client
-- can act between the count and the add. Time is the server's TIME, so the
-- clocks of the application servers never enter the decision.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  -- Unique member: TIME's two parts, then the count (two admissions in one
  -- microsecond see different counts, and the trim is the same for both).
  redis.call('ZADD', KEYS[1], now, t[1] .. '.' .. t[2] .. '.' .. count)
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
-- ANCHOR_END: script
