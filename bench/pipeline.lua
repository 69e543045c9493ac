-- wrk script: DEPTH pipelined GETs per request call (the standard wrk pipelining pattern).
--
--   wrk -t2 -c100 -d10s --latency -s bench/pipeline.lua http://127.0.0.1:PORT/index.html [-- DEPTH]
--
-- init builds DEPTH copies of `GET <url's path>` (default 16) written in one go; wrk parses
-- the request string, expects DEPTH responses and counts each one, so "Requests/sec" is
-- responses per second. Its latency figures are those of a whole batch (the time to the last
-- of the DEPTH responses). Used by bench/run.
init = function(args)
    local depth = tonumber(args[1]) or 16
    local r = {}
    for i = 1, depth do
        r[i] = wrk.format(nil, wrk.path)
    end
    req = table.concat(r)
end

request = function()
    return req
end
