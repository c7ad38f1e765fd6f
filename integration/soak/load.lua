-- wrk script of integration/soak.sh: well-formed requests only, so every
-- answer must be 2xx. Each connection cycles through a mix of small and
-- large responses, sessions, cookies and POST bodies on both sides of
-- fpmlb's body_buffer_size (64k: read whole below, streamed above).
-- done() prints one line, "SOAK-WRK {json}", with the status counts.

-- Globals: thread:get() in done() reads a thread's globals only.
requests = {}
counts = {}
local threads = {}

local function body(n)
    return string.rep("0123456789abcdef", math.floor(n / 16)) .. string.rep("x", n % 16)
end

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    local form = { ["Content-Type"] = "application/octet-stream" }
    requests = {
        wrk.format("GET", "/hello.php"),
        wrk.format("GET", "/big.php?bytes=65536"),
        wrk.format("GET", "/hello.php?q=" .. string.rep("a", 2000)),
        wrk.format("GET", "/session.php"),
        wrk.format("GET", "/cookies.php"),
        wrk.format("GET", "/sub/"),
        -- No HEAD here: wrk's parser does not know the request was HEAD and
        -- waits for a body when the answer has no length (fpmlb makes none
        -- up, RFC 9110 9.3.2); clients.py's "head" kind sends HEAD instead.
        wrk.format("GET", "/big.php?bytes=100000"),
        wrk.format("POST", "/upload.php", form, ""),
        wrk.format("POST", "/upload.php", form, body(1000)),
        wrk.format("POST", "/upload.php", form, body(65536)),
        wrk.format("POST", "/upload.php", form, body(65537)),
        wrk.format("GET", "/big.php?bytes=1048576"),
        wrk.format("POST", "/upload.php", form, body(300000)),
        wrk.format("GET", "/hello.php"),
    }
    counter = 0
end

function request()
    counter = counter + 1
    return requests[(counter % #requests) + 1]
end

function response(status, headers, body)
    local key = tostring(status)
    counts[key] = (counts[key] or 0) + 1
end

function done(summary, latency, reqs)
    local total = {}
    for _, thread in ipairs(threads) do
        local c = thread:get("counts")
        for k, v in pairs(c) do
            total[k] = (total[k] or 0) + v
        end
    end
    local parts = {}
    for k, v in pairs(total) do
        table.insert(parts, string.format('"%s": %d', k, v))
    end
    local e = summary.errors
    io.write(string.format(
        'SOAK-WRK {"requests": %d, "duration_us": %d, "status": {%s}, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, "p99_ms": %.1f, "max_ms": %.1f}\n',
        summary.requests, summary.duration, table.concat(parts, ", "),
        e.connect, e.read, e.write, e.timeout,
        latency:percentile(99) / 1000, latency.max / 1000))
end
