#!/usr/bin/env node
// A stand-in coordinator for working on the dashboard without the C build: serves the REST
// endpoints the dashboard reads, the cacheout.dashboard.v1 socket (proto/DASHBOARD.md) and,
// when given a directory, the built files with the SPA fallback. Jobs run on simulated workers.
// Not a test double for the real coordinator: tests/e2e runs against the real binaries.
//
//   node dev/mock-coordinator.mjs [--port 8000] [--dist dist] [--token secret] [--no-ws]
//                                 [--drop-every N]
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize } from "node:path";

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const PORT = Number(opt("port", "8000"));
const DIST = opt("dist", "");
const TOKEN = opt("token", "dev-token");
const NO_WS = args.includes("--no-ws");
// Every Nth event is numbered but not sent, as a full queue would do: clients must resync.
const DROP_EVERY = Number(opt("drop-every", "0"));
let resyncs = 0;

const iso = (t = Date.now()) => new Date(t).toISOString();
const users = new Map([["default-buyer", { credits: 100_000_000n, held: 0n }]]);
const workers = new Map();
const jobs = [];
const output = new Map();
let nextJob = 1;
const sessions = new Set();

const micro = (m) => Number(m) / 1e6;
const pricing = { cost_per_core: 0.1, cost_per_100mb_ram: 0.001, max_job_cores: 16, max_job_ram_mb: 65536 };

function addWorker(id, cores, ram) {
  workers.set(id, {
    worker_id: id,
    owner_id: `${id}-owner`,
    cpu_cores: cores,
    ram_mb: ram,
    free_cores: cores,
    free_ram_mb: ram,
    status: "idle",
    connection: "websocket",
    running_jobs: 0,
    last_heartbeat: iso(),
    created_at: iso(),
    updated_at: iso(),
  });
}
addWorker("agent-berlin-01", 8, 16384);
addWorker("agent-paris-02", 4, 8192);

function health() {
  const count = (s) => jobs.filter((j) => j.status === s).length;
  const ws = [...workers.values()];
  let total = 0n;
  for (const u of users.values()) total += u.credits + u.held;
  return {
    status: "healthy",
    workers: {
      total: ws.length,
      idle: ws.filter((w) => w.status === "idle").length,
      busy: ws.filter((w) => w.status === "busy").length,
      offline: ws.filter((w) => w.status === "offline").length,
    },
    jobs: Object.fromEntries(
      ["pending", "assigned", "running", "completed", "failed", "cancelled"].map((s) => [s, count(s)]),
    ),
    total_credits: micro(total),
    active_users: users.size,
    metrics: { uptime_seconds: Math.round(process.uptime()), database: "mock", pricing },
  };
}

/* WebSocket (RFC 6455), server side, text frames only. */
function wsFrame(text) {
  const payload = Buffer.from(text);
  const n = payload.length;
  const head =
    n < 126
      ? Buffer.from([0x81, n])
      : n < 65536
        ? Buffer.from([0x81, 126, n >> 8, n & 255])
        : Buffer.concat([
            Buffer.from([0x81, 127]),
            (() => {
              const b = Buffer.alloc(8);
              b.writeBigUInt64BE(BigInt(n));
              return b;
            })(),
          ]);
  return Buffer.concat([head, payload]);
}
function send(s, obj, numbered = true) {
  if (numbered) {
    obj = { ...obj, seq: ++s.seq };
    if (DROP_EVERY && obj.seq % DROP_EVERY === 0) return;
  }
  s.sock.write(wsFrame(JSON.stringify(obj)));
}
function broadcast(obj, adminOnly = false) {
  for (const s of sessions) if (!adminOnly || s.admin) send(s, obj);
}
function snapshot(s) {
  send(
    s,
    {
      type: "snapshot",
      seq: s.seq,
      server_time: iso(),
      session: { admin: s.admin },
      health: health(),
      workers: [...workers.values()],
      jobs: jobs.slice(0, 100).map(pub),
      pricing,
    },
    false,
  );
}
const pub = (j) => {
  const rest = { ...j };
  delete rest.code;
  return rest;
};

function onClientMessage(s, text) {
  let m;
  try {
    m = JSON.parse(text);
  } catch {
    return send(s, { type: "error", error: { code: "bad_message", message: "not JSON" } }, false);
  }
  if (m.type === "auth") {
    s.admin = m.token === TOKEN;
    send(
      s,
      s.admin
        ? { type: "auth.result", ok: true, admin: true }
        : {
            type: "auth.result",
            ok: false,
            admin: false,
            error: { code: "unauthorized", message: "admin token rejected" },
          },
      false,
    );
  } else if (m.type === "resync") {
    resyncs++;
    console.log(`resync #${resyncs} (session seq ${s.seq})`);
    snapshot(s);
  }
}

function upgrade(req, sock) {
  const protos = (req.headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim());
  if (NO_WS || req.url !== "/ws/dashboard" || !protos.includes("cacheout.dashboard.v1")) {
    sock.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  const accept = createHash("sha1")
    .update(req.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
    .digest("base64");
  sock.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: cacheout.dashboard.v1\r\n\r\n`,
  );
  const s = { sock, seq: 0, admin: req.headers["x-admin-token"] === TOKEN };
  sessions.add(s);
  let buf = Buffer.alloc(0);
  sock.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 15;
      let len = buf[1] & 127;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      if (buf.length < off + 4 + len) return;
      const mask = buf.subarray(off, off + 4);
      const data = Buffer.from(buf.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < data.length; i++) data[i] ^= mask[i & 3];
      buf = buf.subarray(off + 4 + len);
      if (op === 8) {
        sock.end(Buffer.from([0x88, 0]));
        sessions.delete(s);
        return;
      }
      if (op === 9) sock.write(Buffer.concat([Buffer.from([0x8a, data.length]), data]));
      if (op === 1) onClientMessage(s, data.toString("utf8"));
    }
  });
  const drop = () => sessions.delete(s);
  sock.on("close", drop);
  sock.on("error", drop);
  snapshot(s);
}

/* Simulated scheduling: a pending job is assigned, runs for a few seconds, prints, completes. */
function update(j) {
  broadcast({ type: "job.updated", job: pub(j) });
}
function workerUpdate(w) {
  w.updated_at = iso();
  broadcast({ type: "worker.updated", worker: w });
}
function tick() {
  for (const w of workers.values())
    if (w.status !== "offline") {
      w.last_heartbeat = iso();
    }
  for (const j of jobs.filter((x) => x.status === "pending").reverse()) {
    const w = [...workers.values()].find(
      (x) => x.status !== "offline" && x.free_cores >= j.required_cores && x.free_ram_mb >= j.required_ram_mb,
    );
    if (!w) continue;
    w.free_cores -= j.required_cores;
    w.free_ram_mb -= j.required_ram_mb;
    w.running_jobs += 1;
    w.status = "busy";
    Object.assign(j, { status: "assigned", assigned_worker: w.worker_id, attempts: (j.attempts ?? 0) + 1 });
    update(j);
    workerUpdate(w);
    setTimeout(() => {
      Object.assign(j, { status: "running", started_at: iso() });
      update(j);
    }, 700);
    setTimeout(() => {
      const text = j.code?.includes("Hello World") ? "Hello World\n" : `processing ${j.title}\n`;
      const o = output.get(j.job_id);
      broadcast(
        {
          type: "job.output",
          job_id: j.job_id,
          stream: "stdout",
          offset: Buffer.byteLength(o.stdout),
          bytes: Buffer.byteLength(text),
          data: text,
        },
        true,
      );
      o.stdout += text;
    }, 1800);
    setTimeout(() => {
      const failed = j.command.includes("fail");
      Object.assign(j, {
        status: failed ? "failed" : "completed",
        failure_reason: failed ? "exit_code" : null,
        exit_code: failed ? 1 : 0,
        completed_at: iso(),
        usage: { wall_ms: 2300, cpu_ms: 1900, max_rss_kb: 24576 },
      });
      const u = users.get(j.buyer_id);
      const cost = BigInt(Math.round(j.cost * 1e6));
      u.held -= cost;
      w.free_cores += j.required_cores;
      w.free_ram_mb += j.required_ram_mb;
      w.running_jobs -= 1;
      if (!w.running_jobs) w.status = "idle";
      update(j);
      workerUpdate(w);
      broadcast({ type: "credits.updated", user_id: j.buyer_id, credits: micro(u.credits), held: micro(u.held) });
    }, 3000);
  }
  broadcast({ type: "health.updated", health: health() });
}
setInterval(tick, 1000);

function submit(body) {
  const err = (field, message) => ({ status: 422, body: { error: { code: "invalid_field", message, field } } });
  if (typeof body.title !== "string" || !body.title) return err("title", "title is required");
  if (!Number.isInteger(body.required_cores) || body.required_cores < 1)
    return err("required_cores", "must be an integer >= 1");
  if (body.required_cores > pricing.max_job_cores)
    return err("required_cores", `at most ${pricing.max_job_cores} cores per job`);
  if (!Number.isInteger(body.required_ram_mb) || body.required_ram_mb < 1)
    return err("required_ram_mb", "must be an integer >= 1");
  if (body.command?.includes(";")) return err("command", "command contains a shell operator ';' (use sh -c)");
  const cost = BigInt(body.required_cores) * 100000n + (BigInt(body.required_ram_mb) * 1000n + 50n) / 100n;
  if (!users.has(body.buyer_id)) users.set(body.buyer_id, { credits: 100_000_000n, held: 0n });
  const u = users.get(body.buyer_id);
  if (u.credits < cost)
    return {
      status: 402,
      body: {
        error: {
          code: "insufficient_credits",
          message: `balance ${micro(u.credits)} is below the cost ${micro(cost)}`,
        },
      },
    };
  u.credits -= cost;
  u.held += cost;
  const j = {
    job_id: `job-${String(nextJob++).padStart(4, "0")}`,
    title: body.title,
    description: body.description ?? "",
    status: "pending",
    failure_reason: null,
    cost: micro(cost),
    required_cores: body.required_cores,
    required_ram_mb: body.required_ram_mb,
    priority: body.priority ?? 5,
    command: body.command,
    parameters: body.parameters ?? {},
    buyer_id: body.buyer_id,
    assigned_worker: null,
    image: body.image ?? "default",
    timeout_seconds: body.timeout_seconds ?? 3600,
    attempts: 0,
    max_attempts: body.max_attempts ?? 3,
    exit_code: null,
    usage: null,
    created_at: iso(),
    started_at: null,
    completed_at: null,
    code: body.code ?? "",
  };
  jobs.unshift(j);
  output.set(j.job_id, { stdout: "", stderr: "" });
  update(j);
  broadcast({ type: "credits.updated", user_id: j.buyer_id, credits: micro(u.credits), held: micro(u.held) });
  return { status: 201, body: j };
}

const MIME = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".css": "text/css",
  ".svg": "image/svg+xml",
  ".map": "application/json",
};
const server = createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  const json = (status, body) => {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const admin = req.headers["x-admin-token"] === TOKEN;
  const p = url.pathname;
  let m;
  if (p === "/api/v1/health") return json(200, health());
  if (p === "/api/v1/workers") return json(200, [...workers.values()]);
  if (p === "/api/v1/jobs") {
    let list = jobs;
    for (const k of ["status", "buyer_id"])
      if (url.searchParams.get(k)) list = list.filter((j) => j[k] === url.searchParams.get(k));
    return json(200, list.slice(0, Number(url.searchParams.get("limit") ?? 100)).map(pub));
  }
  if ((m = /^\/api\/v1\/jobs\/([^/]+)$/.exec(p))) {
    const j = jobs.find((x) => x.job_id === m[1]);
    return j ? json(200, admin ? j : pub(j)) : json(404, { error: { code: "not_found", message: `no job '${m[1]}'` } });
  }
  if ((m = /^\/api\/v1\/jobs\/([^/]+)\/output$/.exec(p))) {
    if (!admin) return json(401, { error: { code: "unauthorized", message: "missing or wrong admin token" } });
    const o = output.get(m[1]);
    return o
      ? json(200, { job_id: m[1], ...o, truncated: false })
      : json(404, { error: { code: "not_found", message: "no such job" } });
  }
  if ((m = /^\/api\/v1\/credits\/([^/]+)$/.exec(p))) {
    const u = users.get(m[1]);
    return u
      ? json(200, { user_id: m[1], credits: micro(u.credits), held: micro(u.held) })
      : json(404, { error: { code: "not_found", message: `no user '${m[1]}'` } });
  }
  if ((m = /^\/api\/v1\/credits\/([^/]+)\/ledger$/.exec(p))) {
    if (!admin) return json(401, { error: { code: "unauthorized", message: "missing or wrong admin token" } });
    return json(
      200,
      jobs
        .filter((j) => j.buyer_id === m[1])
        .map((j) => ({ created_at: j.created_at, kind: "hold", amount: -j.cost, job_id: j.job_id })),
    );
  }
  if (p === "/api/v1/submit" && req.method === "POST") {
    if (!admin) return json(401, { error: { code: "unauthorized", message: "missing or wrong admin token" } });
    let data = "";
    req.on("data", (c) => (data += c));
    req.on("end", () => {
      let b;
      try {
        b = JSON.parse(data);
      } catch {
        return json(400, { error: { code: "bad_json", message: "not JSON" } });
      }
      const r = submit(b);
      json(r.status, r.body);
    });
    return;
  }
  if (p.startsWith("/api/")) return json(404, { error: { code: "not_found", message: "no such endpoint" } });
  if (!DIST) {
    res.writeHead(404);
    return res.end();
  }
  let file = normalize(join(DIST, p));
  if (!file.startsWith(normalize(DIST)) || !existsSync(file) || statSync(file).isDirectory())
    file = join(DIST, "index.html");
  res.writeHead(200, { "Content-Type": MIME[extname(file)] ?? "application/octet-stream" });
  res.end(readFileSync(file));
});
server.on("upgrade", upgrade);
server.listen(PORT, "127.0.0.1", () =>
  console.log(`mock coordinator on http://127.0.0.1:${PORT} (admin token '${TOKEN}')`),
);
process.on("SIGTERM", () => process.exit(0));
