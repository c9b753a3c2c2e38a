-- Records a failed upstream call in an account's activity: its last error
-- (when and its class) and one more error today.
-- KEYS: 1 the account's hash.
-- ARGV: 1 prefix, 2 now ('' = the server's clock), 3 account id, 4 the
--       error class label, 5 day counter TTL (seconds).
local now = NOW
redis.call('HSET', KEYS[1], 'last_error_at', ms_text(now), 'last_error', ARGV[4])
count_activity(ARGV[3], now, 'errors', ARGV[5])
return 0
