-- wrk script for bench/intake.py: POST /sync with a full EventBridge "ECR Image Action"
-- PUSH event per request, each with its own tag (and digest and event id), so no two
-- events concern the same image and nothing coalesces.
--
--   wrk -t1 -c16 -d10s --latency -s bench/intake_post.lua URL -- API_KEY RUN ACCOUNT REGION REPO
--
-- At the end one line "BENCH-JSON {...}" carries exact figures (latencies in
-- microseconds) for bench/intake.py to read instead of wrk's rounded text.
--
-- With BENCH_RATE=N in the environment the load is paced instead of closed-loop:
-- each answer's connection waits for the next slot of a schedule of N requests a
-- second (per wrk thread), so N a second are offered whatever the latency, as long
-- as a connection is free. wrk measures latency from the send, so a wait for a free
-- connection is not in it: give enough connections that one is always free.

local threads = {}
local next_thread = 0

function setup(thread)
   thread:set("thread_index", next_thread)
   next_thread = next_thread + 1
   table.insert(threads, thread)
end

local api_key, run, account, region, repository
local counter = 0
local headers = {}
local template = '{"version":"0","id":"%s-%d-%d","detail-type":"ECR Image Action",'
   .. '"source":"aws.ecr","account":"%s","time":"2026-11-28T01:54:34Z","region":"%s",'
   .. '"resources":[],"detail":{"result":"SUCCESS","repository-name":"%s",'
   .. '"action-type":"PUSH","image-tag":"%s-%d-%d","image-digest":"sha256:%032x%032x"}}'

function init(args)
   api_key = args[1]
   run = args[2]
   account = args[3]
   region = args[4]
   repository = args[5]
   headers["Content-Type"] = "application/json"
   headers["X-API-Key"] = api_key
end

function request()
   counter = counter + 1
   local t = thread_index or 0
   local body = string.format(
      template, run, t, counter, account, region, repository, run, t, counter, t, counter
   )
   return wrk.format("POST", "/sync", headers, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   local parts = {
      string.format('"requests":%d', summary.requests),
      string.format('"duration_us":%d', summary.duration),
      string.format('"bytes":%d', summary.bytes),
      string.format('"connect_errors":%d', e.connect),
      string.format('"read_errors":%d', e.read),
      string.format('"write_errors":%d', e.write),
      string.format('"timeouts":%d', e.timeout),
      string.format('"non_2xx":%d', e.status),
      string.format('"latency_min_us":%d', latency.min),
      string.format('"latency_max_us":%d', latency.max),
      string.format('"latency_mean_us":%.1f', latency.mean),
   }
   for _, p in ipairs({50, 75, 90, 99, 99.9}) do
      table.insert(parts, string.format('"p%s_us":%d', tostring(p), latency:percentile(p)))
   end
   io.write("BENCH-JSON {" .. table.concat(parts, ",") .. "}\n")
end

local rate = tonumber(os.getenv("BENCH_RATE") or "")
if rate and rate > 0 then
   local ffi = require("ffi")
   ffi.cdef([[
      typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
      int clock_gettime(int clock_id, bench_timespec *tp);
   ]])
   local clock = ffi.new("bench_timespec")
   local interval_ms = 1000 / rate
   local next_slot

   local function now_ms()
      ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
      return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
   end

   -- Defined only when pacing: wrk checks for it once, and a delay() that always
   -- answered 0 would still cost every request a trip through wrk's timer.
   function delay()
      local now = now_ms()
      next_slot = next_slot or now
      local wait = next_slot - now
      next_slot = next_slot + interval_ms -- behind schedule: catch up, the offered rate holds
      if wait < 0 then
         return 0
      end
      return wait
   end
end
