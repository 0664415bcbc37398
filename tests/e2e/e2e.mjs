// Browser tests of the dashboard in real Chromium (playwright-core driving Debian's chromium),
// against a real cacheout-coordinator and cacheout-agent that this script starts and stops.
// Started by tests/e2e/run.sh, which checks the prerequisites; see that file for the variables.
import { spawn, spawnSync } from "node:child_process";
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = process.env;
const SRC = env.CO_SRC_DIR;
const BUILD = env.CO_BUILD_DIR;
const DIST = env.E2E_FRONTEND_DIR ?? join(SRC, "frontend", "dist");
const SHOTS = env.E2E_SCREENSHOT_DIR ?? join(BUILD, "screenshots");
const CHROMIUM = env.E2E_CHROMIUM ?? "/usr/bin/chromium";
const WORKER_MODE = env.E2E_WORKER ?? "agent"; // "agent" (real) or "http" (poll-API stand-in)
const require = createRequire(join(SRC, "frontend", "package.json"));
const { chromium } = require("playwright-core");

// At least 24 characters: the coordinator refuses shorter admin tokens (unless DEBUG=true).
const ADMIN_TOKEN = `e2e-admin-token-${process.pid}-${Date.now()}`;
const AGENT_TOKEN = `e2e-agent-${process.pid}`;
const WORKER_ID = "e2e-agent-1";
const WORKER_TIMEOUT = 5;
const work = mkdtempSync(join(tmpdir(), "cacheout-e2e-"));
mkdirSync(SHOTS, { recursive: true });

let passed = 0;
let failed = 0;
let skipped = 0;
const procs = new Set();

function log(...a) {
  console.log(...a);
}
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    log(`ok   ${name} (${Date.now() - t0} ms)`);
    return true;
  } catch (e) {
    failed++;
    log(`FAIL ${name}: ${(e && e.message) || e}`);
    return false;
  }
}
function skip(name, why) {
  skipped++;
  log(`SKIP ${name}: ${why}`);
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
const FINISHED = ["completed", "failed", "cancelled"];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function start(name, cmd, args, extraEnv) {
  const out = createWriteStream(join(work, `${name}.log`), { flags: "a" });
  const child = spawn(cmd, args, {
    cwd: work,
    env: { PATH: env.PATH, HOME: work, LANG: "C.UTF-8", ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  child.exited = new Promise((r) => child.on("exit", (code, sig) => r({ code, sig })));
  procs.add(child);
  child.exited.then(() => procs.delete(child));
  return child;
}
async function stop(child, signal = "SIGTERM", waitMs = 10000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const t = setTimeout(() => child.kill("SIGKILL"), waitMs);
  await child.exited;
  clearTimeout(t);
}
function cleanup() {
  for (const p of procs) {
    try {
      p.kill("SIGKILL");
    } catch {
      /* gone */
    }
  }
}
process.on("exit", cleanup);
process.on("uncaughtException", (e) => {
  failed++;
  log(`FAIL harness error: ${e.message}`);
  finish();
});
process.on("unhandledRejection", (e) => {
  failed++;
  log(`FAIL harness error: ${e?.message ?? e}`);
  finish();
});
for (const s of ["SIGINT", "SIGTERM"])
  process.on(s, () => {
    cleanup();
    process.exit(1);
  });

const PORT = await freePort();
const BASE = `http://127.0.0.1:${PORT}`;
const coordEnv = {
  HOST: "127.0.0.1",
  PORT: String(PORT),
  ADMIN_TOKEN,
  AGENT_TOKEN,
  DATABASE_URL: `sqlite:///${join(work, "cacheout.db")}`,
  FRONTEND_DIR: DIST,
  SQL_DIR: join(SRC, "sql"),
  WORKER_TIMEOUT_SECONDS: String(WORKER_TIMEOUT),
  MAX_JOB_CORES: "8",
  MAX_JOB_RAM_MB: "16384",
  DEFAULT_STARTING_CREDITS: "100",
  COST_PER_CORE: "0.1",
  COST_PER_100MB_RAM: "0.001",
  CORS_ORIGINS: BASE,
  LOG_LEVEL: "INFO",
};

async function startCoordinator() {
  const c = start("coordinator", join(BUILD, "coordinator", "cacheout-coordinator"), [], coordEnv);
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    if (c.exitCode !== null) throw new Error(`coordinator exited with ${c.exitCode} (see ${work}/coordinator.log)`);
    try {
      const r = await fetch(`${BASE}/api/v1/health`);
      if (r.ok) return c;
    } catch {
      /* not yet */
    }
    await sleep(200);
  }
  throw new Error("coordinator did not answer /api/v1/health within 20 s");
}

function startAgent() {
  return start("agent", join(BUILD, "agent", "cacheout-agent"), [], {
    COORDINATOR_URL: `ws://127.0.0.1:${PORT}`,
    AGENT_TOKEN,
    WORKER_ID,
    AGENT_CORES: "2",
    AGENT_RAM_MB: "8192",
    AGENT_WORK_ROOT: join(work, "agent"),
    LOG_LEVEL: "INFO",
  });
}

/*
 * Stand-in worker over the poll API (POST /register, GET /task, POST /status), used only with
 * E2E_WORKER=http to check the harness and the dashboard while cacheout-agent is not available.
 * It runs nothing: it reports the expected output of the README example. Results obtained this
 * way say so in the summary line.
 */
function startHttpWorker() {
  let stopped = false;
  const h = { "Content-Type": "application/json", "X-Agent-Token": AGENT_TOKEN };
  const post = (p, b) => fetch(`${BASE}${p}`, { method: "POST", headers: h, body: JSON.stringify(b) });
  const loop = (async () => {
    while (!stopped) {
      try {
        await post("/api/v1/register", { worker_id: WORKER_ID, cpu_cores: 2, ram_mb: 8192, status: "idle" });
        const r = await fetch(`${BASE}/api/v1/task?worker_id=${WORKER_ID}`, { headers: h });
        if (r.status === 200) {
          const t = await r.json();
          const base = { worker_id: WORKER_ID, job_id: t.job_id, attempt: t.attempt };
          await sleep(1500);
          await post("/api/v1/status", { ...base, status: "running" });
          await sleep(2500);
          const hello = typeof t.code === "string" && t.code.includes("Hello World");
          await post("/api/v1/status", { ...base, status: "completed", exit_code: 0, stdout: hello ? "Hello World\n" : "", stderr: "" });
        }
      } catch {
        /* coordinator restarting */
      }
      await sleep(700);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

function startWorker() {
  if (WORKER_MODE === "http") return startHttpWorker();
  const a = startAgent();
  return { stop: () => stop(a), proc: a };
}

/* ---- the run ---- */
let coord = await startCoordinator().catch((e) => {
  log(`FAIL start coordinator: ${e.message}`);
  failed++;
  return null;
});
if (!coord) finish();

async function rest(method, path, body, headers = { "X-Admin-Token": ADMIN_TOKEN }) {
  const r = await fetch(BASE + path, {
    method,
    headers: { ...headers, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  return { status: r.status, json };
}
// Whether the coordinator has accounts (API.md "Accounts, API keys, roles"): without them the
// dashboard treats the admin token as the built-in admin and the role passes are skipped.
const me0 = await rest("GET", "/api/v1/me");
const haveAccounts = me0.status !== 404;

// A fresh profile directory per run (playwright wants it as the persistent context's argument).
const context = await chromium.launchPersistentContext(join(work, "chromium-profile"), {
  executablePath: CHROMIUM,
  viewport: { width: 1280, height: 860 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(15000);

// Console errors are failures, except network errors the test provokes on purpose (the
// coordinator is restarted) and answers the app expects (404 for an unknown buyer's balance).
const consoleErrors = [];
let expectNetworkErrors = false;
const allowedStatuses = new Set([404]); // 404: an unknown buyer's balance (checked below)
page.on("console", (m) => {
  if (m.type() !== "error") return;
  const t = m.text();
  if (expectNetworkErrors && /WebSocket|Failed to load resource|ERR_CONNECTION|net::/.test(t)) return;
  const st = /Failed to load resource: the server responded with a status of (\d+)/.exec(t);
  if (st && allowedStatuses.has(Number(st[1]))) return;
  consoleErrors.push(t);
});
page.on("pageerror", (e) => consoleErrors.push(`page error: ${e.message}`));
// Every URL the page asks for (REST, assets, WebSocket): no credential may ever be in one.
const seenUrls = [];
page.on("request", (r) => seenUrls.push(r.url()));
page.on("websocket", (ws) => seenUrls.push(ws.url()));
page.on("response", (r) => {
  if (r.status() === 404 && !/\/api\/v1\/credits\/|\/api\/v1\/jobs\/no-such-job$/.test(r.url()) && !(!haveAccounts && /\/api\/v1\/me$/.test(r.url())))
    consoleErrors.push(`unexpected 404 for ${r.url()}`);
});

/** Follows a link of the main navigation (a client-side route change, never a reload). */
async function nav(name) {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true }).click();
}
async function navLabels() {
  return page.getByRole("navigation", { name: "Main" }).getByRole("link").allTextContents();
}
/** A client-side route change (no reload, the live connection stays). */
async function goClient(path) {
  await page.evaluate((p) => {
    history.pushState({}, "", p);
    dispatchEvent(new PopStateEvent("popstate"));
  }, path);
}
async function sessionRoles() {
  return page
    .getByTestId("session-state")
    .getAttribute("data-roles", { timeout: 1000 })
    .catch(() => null);
}
async function signIn(secret, kind) {
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: "Sign in" });
  await dialog.getByLabel("API key or admin token").fill(secret);
  await dialog.getByRole("radio", { name: kind }).check();
  await dialog.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}
async function signOut() {
  const button = page.getByRole("button", { name: "Sign out" });
  if ((await button.count()) === 0) return; // already signed out
  await button.click();
  await page.getByTestId("read-only-notice").waitFor();
}
async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}
async function connState() {
  return page.getByTestId("connection-state").getAttribute("data-state");
}
async function waitFor(pred, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await pred();
    if (last) return last;
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

await step("deep links serve the app (/, /jobs, /jobs/:id, /submit, /workers, /credits)", async () => {
  for (const p of ["/", "/jobs", "/jobs/some-job", "/submit", "/workers", "/credits"]) {
    const r = await fetch(BASE + p);
    const body = await r.text();
    assert(r.status === 200, `${p}: status ${r.status}`);
    assert(body.includes('<div id="root">'), `${p}: not the dashboard's index.html`);
  }
});

await step("overview renders and shows the connection state, read-only without a token", async () => {
  await page.goto(BASE + "/");
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await waitFor(async () => ["live", "polling"].includes(await connState()), 12000, "live or polling");
  await page.getByTestId("read-only-notice").waitFor();
  await page.getByRole("group", { name: "Agents online" }).waitFor();
  await page.evaluate(() => (window.__e2eNoReload = true));
  await shot("overview-empty");
});

await step("anonymous: only the public pages are offered; the others say to sign in", async () => {
  assert((await navLabels()).join(",") === "Overview,Jobs,Workers", `navigation: ${(await navLabels()).join(",")}`);
  for (const p of ["/submit", "/credits", "/keys", "/selling", "/users", "/audit"]) {
    await goClient(p);
    await page.getByTestId("not-allowed").waitFor();
  }
  await goClient("/");
});

await step("the admin token is entered once, kept in sessionStorage and never in a URL", async () => {
  await signIn(ADMIN_TOKEN, "Admin token");
  await page.getByTestId("read-only-notice").waitFor({ state: "detached" });
  const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem("cacheout.credential") ?? "null"));
  assert(stored?.kind === "admin" && stored?.token === ADMIN_TOKEN, "credential not in sessionStorage");
  await waitFor(async () => (await sessionRoles()) === "admin", 10000, "the admin role");
  const labels = await navLabels();
  for (const l of ["Submit", "Credits", "Users", "Audit log"]) assert(labels.includes(l), `admin navigation lacks ${l}: ${labels}`);
  await nav("Submit");
  await page.getByRole("heading", { name: "Submit a job" }).waitFor();
});

await step("client-side validation shows the message at the field", async () => {
  await page.getByLabel("Cores").fill("0");
  await page.getByLabel("Buyer id").fill("not an id");
  await page.getByRole("button", { name: "Submit job" }).click();
  await page.getByText("Cores must be at least 1").waitFor();
  await page.getByText("Buyer id must be 1-64 letters").waitFor();
  assert((await page.getByLabel("Cores").getAttribute("aria-invalid")) === "true", "Cores not marked invalid");
  await shot("submit-validation");
});

await step("the API's validation error is shown at its field", async () => {
  await page.getByRole("button", { name: "Fill example" }).click();
  await page.getByLabel("Command").fill('python "script.py');
  allowedStatuses.add(422);
  await page.getByRole("button", { name: "Submit job" }).click();
  const err = page.getByTestId("error-command");
  await err.waitFor();
  const text = (await err.textContent()) ?? "";
  assert(/quote/i.test(text), `command error was "${text}"`);
  assert(page.url().endsWith("/submit"), "left the form after a rejected submit");
  allowedStatuses.delete(422);
});

await step("a job no worker can take stays pending and is cancelled from its page", async () => {
  await nav("Submit");
  await page.getByRole("button", { name: "Fill example" }).click();
  await page.getByLabel("Title").fill("Too big to schedule");
  await page.getByLabel("Cores").fill("8"); // the worker below has 2 cores
  await page.getByRole("button", { name: "Submit job" }).click();
  await page.waitForURL(/\/jobs\/[^/]+$/);
  const badge = page.getByTestId("job-status");
  await waitFor(async () => (await badge.getAttribute("data-status")) === "pending", 10000, "pending");
  await page.getByRole("button", { name: "Cancel job" }).click();
  await waitFor(async () => (await badge.getAttribute("data-status")) === "cancelled", 10000, "cancelled");
  await page.getByRole("button", { name: "Cancel job" }).waitFor({ state: "detached" });
});

await step("an unknown job id shows a not-found state", async () => {
  await page.evaluate(() => {
    history.pushState({}, "", "/jobs/no-such-job");
    dispatchEvent(new PopStateEvent("popstate"));
  });
  await page.getByText("No such job").waitFor();
});

let worker = null;
const REASON_STEP = "a pending job's reason (pending_reason) shows on its page and in the list, and follows live when an agent connects";
if (WORKER_MODE === "http") {
  skip(REASON_STEP, "E2E_WORKER=http: the poll-API stand-in is not a connected agent, so no reason changes");
} else {
  await step(REASON_STEP, async () => {
    const r = await rest("POST", "/api/v1/submit", {
      title: "Waits for a larger agent",
      buyer_id: "reason-buyer",
      code: 'print("never")',
      command: "python script.py",
      required_cores: 8, // the agent started below has 2
      required_ram_mb: 256,
    });
    assert(r.status === 201, `submit answered ${r.status}`);
    const id = r.json.job_id;
    await goClient(`/jobs/${encodeURIComponent(id)}`);
    const reason = page.getByTestId("job-pending-reason");
    const code = () => reason.getAttribute("data-code", { timeout: 1000 }).catch(() => null);
    await waitFor(async () => (await code()) === "no_agents", 10000, "reason no_agents on the job page");
    await shot("job-pending-reason");
    // The agent connects while the page is open: the reason changes without a reload.
    worker = startWorker();
    await waitFor(async () => (await code()) === "exceeds_largest_agent", 30000, "reason exceeds_largest_agent");
    const text = (await reason.textContent()) ?? "";
    assert(text.includes(WORKER_ID) && text.includes("2 cores"), `the reason does not name the agent: "${text}"`);
    await nav("Jobs");
    const row = page.locator(`[data-job-id="${id}"]`).getByTestId("pending-reason");
    await row.waitFor();
    assert((await row.getAttribute("data-code")) === "exceeds_largest_agent", "list: another reason");
    assert(((await row.getAttribute("title")) ?? "").includes(WORKER_ID), "list: the message is not the tooltip");
    await shot("jobs-pending-reason");
    const c = await rest("POST", `/api/v1/jobs/${encodeURIComponent(id)}/cancel`);
    assert(c.status === 200, `cancel answered ${c.status}`);
    await waitFor(async () => (await row.count()) === 0, 10000, "the reason gone once the job is cancelled");
    assert(await page.evaluate(() => window.__e2eNoReload === true), "the page was reloaded");
  });
}

await step(`worker starts and shows online (${WORKER_MODE === "http" ? "poll-API stand-in" : "cacheout-agent"})`, async () => {
  worker = worker ?? startWorker(); // started by the pending-reason step already
  await nav("Workers");
  const card = page.locator(`[data-worker-id="${WORKER_ID}"]`);
  await card.waitFor({ timeout: 30000 });
  await waitFor(async () => (await card.getAttribute("data-status")) !== "offline", 20000, "worker online");
  await shot("workers-online");
});

let jobId = null;
await step("the README example submitted through the form goes pending -> running -> completed live", async () => {
  await nav("Submit");
  await page.getByRole("button", { name: "Fill example" }).click();
  await page.getByLabel("Buyer id").fill("default-buyer");
  await shot("submit");
  // 2 cores * 0.1 + 4096 MB / 100 * 0.001 = 0.24096 credits, when the coordinator reports pricing.
  const preview = ((await page.getByTestId("cost-preview").textContent()) ?? "").trim();
  if (/computed on submit/.test(preview)) {
    log("     NOTE: the coordinator reports no pricing (snapshot or health metrics.pricing): no cost preview");
  } else {
    assert(preview === "0.24096 credits", `cost preview "${preview}", expected "0.24096 credits"`);
  }
  // The job sleeps 2 s before printing, so that it is still running well after the job page
  // is on screen; the assertions below do not depend on it (they read the recorded timeline).
  await page.getByLabel("Code", { exact: true }).fill('import time\ntime.sleep(2)\nprint("Hello World")');
  await page.getByRole("button", { name: "Submit job" }).click();
  await page.waitForURL(/\/jobs\/[^/]+$/);
  jobId = decodeURIComponent(page.url().split("/jobs/")[1]);
  // Wait for the end, then read the statuses the client recorded for this job from the submit
  // answer on (not a sample of the badge, which a fast job can pass by before the page renders).
  const badge = page.getByTestId("job-status");
  await waitFor(
    async () => FINISHED.includes(await badge.getAttribute("data-status").catch(() => null)),
    90000,
    "the job to finish",
  );
  const timeline = page.getByTestId("job-timeline");
  const seen = ((await timeline.getAttribute("data-seen")) ?? "").split(" ").filter(Boolean);
  assert(seen[seen.length - 1] === "completed", `job ended ${seen.join(" -> ")}`);
  // The submit answer is recorded before the page opens: the first status is a waiting one.
  assert(["pending", "assigned"].includes(seen[0]), `first recorded status ${seen.join(" -> ")}`);
  // The coordinator's own record: the job started (started_at) before it completed.
  await timeline.locator('[data-step="started"]').waitFor();
  const startedText = (await timeline.locator('[data-step="started"]').textContent()) ?? "";
  assert(!/time not reported/.test(startedText), `no start time: "${startedText}"`);
  log(`     statuses seen: ${seen.join(" -> ")}`);
  assert(await page.evaluate(() => window.__e2eNoReload === true), "the page was reloaded");
});

await step("the job page shows Hello World in the output", async () => {
  assert(jobId, "no job");
  const out = page.getByTestId("job-stdout");
  await waitFor(async () => /Hello World/.test((await out.textContent().catch(() => "")) ?? ""), 15000, "Hello World");
  await shot("job-detail");
});

await step("jobs page lists the job and filters by status", async () => {
  await nav("Jobs");
  await page.locator(`[data-job-id="${jobId}"]`).waitFor();
  await page.getByLabel("Status").selectOption("failed");
  await page.getByText("No jobs match these filters").waitFor();
  await page.getByLabel("Status").selectOption("completed");
  await page.locator(`[data-job-id="${jobId}"]`).waitFor();
  await page.getByLabel("Status").selectOption("");
  await shot("jobs");
});

await step("credits page shows the buyer's balance and ledger", async () => {
  await nav("Credits");
  await page.getByLabel("User id").fill("default-buyer");
  await page.getByRole("button", { name: "Look up" }).click();
  const avail = page.getByTestId("credits-available");
  await avail.waitFor();
  const text = (await avail.textContent()) ?? "";
  // 100 starting credits minus the example's cost (2 cores, 4096 MB at 0.1 and 0.001).
  assert(text.trim() === "99.75904", `balance "${text}", expected 99.75904`);
  await page.getByRole("table", { name: "Ledger" }).waitFor();
  await shot("credits");
});

await step("overview shows the finished job and the agent", async () => {
  await nav("Overview");
  await waitFor(async () => Number(await page.getByTestId("count-completed").textContent()) >= 1, 10000, "completed count");
  await shot("overview");
});

/* ---- one pass per role with user keys (API.md "Accounts, API keys, roles") ---- */

/** Desktop and 390 px screenshots of @pages ([name, path]) for @role; phone widths must not overflow. */
async function roleShots(role, pages) {
  for (const [name, path] of pages) {
    await goClient(path);
    await sleep(600);
    await shot(`${role}-${name}`);
  }
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    for (const [name, path] of pages) {
      await goClient(path);
      await sleep(600);
      await shot(`${role}-${name}-390`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert(overflow <= 1, `${role} ${path} is ${overflow}px wider than a 390 px screen`);
    }
  } finally {
    await page.setViewportSize({ width: 1280, height: 860 });
  }
}

const accounts = haveAccounts ? await rest("POST", "/api/v1/users", { user_id: "e2e-buyer", username: "E2E Buyer" }) : me0;
const BUYER = "e2e-buyer";
const SELLER = "e2e-seller";
let buyerKey = null;
let sellerKey = null;
let buyerJob = null;
if (haveAccounts) {
  await rest("POST", "/api/v1/users", { user_id: SELLER });
  buyerKey = (await rest("POST", `/api/v1/users/${BUYER}/keys`, { name: "e2e buyer", scopes: ["buy"] })).json?.token ?? null;
  sellerKey = (await rest("POST", `/api/v1/users/${SELLER}/keys`, { name: "e2e seller", scopes: ["sell"] })).json?.token ?? null;
}
const rolePass = async (name, fn) => {
  if (!haveAccounts) {
    skip(name, `the coordinator has no accounts API (GET /api/v1/me answered ${me0.status}): role passes need it`);
    return;
  }
  await step(name, fn);
};

await rolePass("a wrong key is refused with a clear message and gives no rights", async () => {
  await signOut();
  allowedStatuses.add(401); // the rejected key's answers
  await signIn(`co_${"x".repeat(43)}`, "API key");
  await page.getByTestId("rejected-notice").waitFor();
  assert(/Rejected/.test((await page.getByTestId("session-state").textContent()) ?? ""), "the session is not shown as rejected");
  assert((await navLabels()).join(",") === "Overview,Jobs,Workers", `navigation with a wrong key: ${await navLabels()}`);
  await goClient("/credits");
  await page.getByTestId("not-allowed").waitFor();
  await signOut();
  allowedStatuses.delete(401);
  await goClient("/");
});

await rolePass("buyer: own jobs, balance, ledger and keys; submits without a buyer id; no admin or seller pages", async () => {
  assert(buyerKey, `no buy key was created for the buyer (creating the user answered ${accounts.status})`);
  await signOut();
  await signIn(buyerKey, "API key");
  await waitFor(async () => (await sessionRoles()) === "buyer", 10000, "the buyer role");
  const labels = await navLabels();
  assert(labels.join(",") === "Overview,Jobs,Submit,Workers,Credits,API keys", `buyer navigation: ${labels}`);
  for (const p of ["/users", "/audit", "/selling"]) {
    await goClient(p);
    await page.getByTestId("not-allowed").waitFor();
  }
  // Submit: no buyer id field; the key's user pays.
  await nav("Submit");
  await page.getByTestId("self-buyer").waitFor();
  assert((await page.getByLabel("Buyer id").count()) === 0, "the buyer's form has a buyer id field");
  await page.getByRole("button", { name: "Fill example" }).click();
  await page.getByLabel("Title", { exact: true }).fill("Buyer's own job");
  await page.getByRole("button", { name: "Submit job" }).click();
  await page.waitForURL(/\/jobs\/[^/]+$/);
  buyerJob = decodeURIComponent(page.url().split("/jobs/")[1]);
  const badge = page.getByTestId("job-status");
  await waitFor(async () => FINISHED.includes(await badge.getAttribute("data-status")), 90000, "the buyer's job to finish");
  assert((await badge.getAttribute("data-status")) === "completed", "the buyer's job did not complete");
  const out = page.getByTestId("job-stdout");
  await waitFor(async () => /Hello World/.test((await out.textContent().catch(() => "")) ?? ""), 15000, "the buyer's output");
  // Jobs: only the buyer's own; the admin's default-buyer job is not listed.
  await nav("Jobs");
  await page.locator(`[data-job-id="${buyerJob}"]`).waitFor();
  assert((await page.locator(`[data-job-id="${jobId}"]`).count()) === 0, "another buyer's job is listed to the buyer");
  // Another buyer's job: public view, no output, no cancel.
  await goClient(`/jobs/${encodeURIComponent(jobId)}`);
  await page.getByText("another buyer's job (public view)").waitFor();
  await page.getByText("Output is for the job's buyer").waitFor();
  assert((await page.getByRole("button", { name: "Cancel job" }).count()) === 0, "cancel offered on another buyer's job");
  // Credits: own balance and ledger, no lookup of others, no grant.
  await nav("Credits");
  await page.getByTestId("credits-available").waitFor();
  await page.getByRole("table", { name: "Ledger" }).waitFor();
  // Spending per day: today's bar carries the job's charge.
  const spent = page.getByTestId("statement-spent");
  await spent.waitFor();
  await waitFor(async () => (await spent.getAttribute("data-total")) !== "0.00", 10000, "the day's spending");
  assert((await page.getByRole("button", { name: "Look up" }).count()) === 0, "the buyer can look up other users");
  assert((await page.getByRole("button", { name: "Grant" }).count()) === 0, "the buyer can grant credits");
  // Keys: the token is shown once; revoking removes the key.
  await nav("API keys");
  await page.getByLabel("New key name").fill("laptop");
  await page.getByRole("button", { name: "Create key" }).click();
  const token = ((await page.getByTestId("new-key-token").textContent()) ?? "").trim();
  assert(token.startsWith("co_"), `new key token "${token.slice(0, 6)}..."`);
  const row = page.getByTestId("key-row").filter({ hasText: "laptop" });
  await row.waitFor();
  const me = await rest("GET", "/api/v1/me", null, { Authorization: `Bearer ${token}` });
  assert(me.status === 200 && me.json?.user_id === BUYER, `the new key answers /me with ${me.status}`);
  await row.getByRole("button", { name: "Revoke" }).click();
  await row.waitFor({ state: "detached" });
  const after = await rest("GET", "/api/v1/me", null, { Authorization: `Bearer ${token}` });
  assert(after.status === 401, `a revoked key answers /me with ${after.status}`);
  allowedStatuses.add(403); // the public pages ask for nothing the buyer may not see, but be explicit
  await roleShots("buyer", [
    ["jobs", "/jobs"],
    ["submit", "/submit"],
    ["credits", "/credits"],
    ["keys", "/keys"],
  ]);
  allowedStatuses.delete(403);
});

let sellerAgent = null;
let agentCmd = null;
await rolePass("seller: own workers, earnings, the agent command with a new sell key; no submit or admin pages", async () => {
  assert(sellerKey, "no sell key was created for the seller");
  await signOut();
  await signIn(sellerKey, "API key");
  await waitFor(async () => (await sessionRoles()) === "seller", 10000, "the seller role");
  const labels = await navLabels();
  assert(labels.includes("Selling") && !labels.includes("Submit") && !labels.includes("Users"), `seller navigation: ${labels}`);
  await goClient("/submit");
  await page.getByTestId("not-allowed").waitFor();
  await nav("Selling");
  await page.getByLabel("Worker id").fill("e2e-seller-agent");
  await page.getByRole("button", { name: "Create agent key" }).click();
  const cmd = ((await page.getByTestId("agent-command").textContent()) ?? "").trim();
  const m = /^COORDINATOR_URL=(\S+) AGENT_KEY=(co_\S+) WORKER_ID=(\S+) cacheout-agent$/.exec(cmd);
  assert(m, `agent command "${cmd.replace(/co_\S+/, "co_...")}"`);
  assert(m[1] === `ws://127.0.0.1:${PORT}/ws/agent`, `agent URL ${m[1]}`);
  agentCmd = m;
  await page.getByTestId("earned").waitFor();
  await roleShots("seller", [
    ["selling", "/selling"],
    ["workers", "/workers"],
    ["keys", "/keys"],
  ]);
});

{
  // Run exactly what the Selling page says (as environment variables): the worker becomes theirs.
  const name = "seller: the agent started with the page's command shows up as the seller's worker";
  const help = spawnSync(join(BUILD, "agent", "cacheout-agent"), ["--help"], { encoding: "utf8" });
  if (!haveAccounts) skip(name, "no accounts API");
  else if (WORKER_MODE !== "agent") skip(name, "E2E_WORKER=http: no cacheout-agent to run");
  else if (!/AGENT_KEY/.test(`${help.stdout}${help.stderr}`))
    skip(name, "cacheout-agent does not read AGENT_KEY yet (its --help does not name it)");
  else
    await step(name, async () => {
      assert(agentCmd, "the seller pass produced no agent command");
      const [, url, key, workerId] = agentCmd;
      sellerAgent = start("seller-agent", join(BUILD, "agent", "cacheout-agent"), [], {
        COORDINATOR_URL: url,
        AGENT_KEY: key,
        WORKER_ID: workerId,
        AGENT_CORES: "1",
        AGENT_RAM_MB: "1024",
        AGENT_WORK_ROOT: join(work, "seller-agent"),
        LOG_LEVEL: "INFO",
      });
      await goClient("/selling");
      const card = page.getByRole("list", { name: "Your workers" }).locator(`[data-worker-id="${workerId}"]`);
      await card.waitFor({ timeout: 30000 });
      await waitFor(async () => (await card.getAttribute("data-status")) !== "offline", 20000, "the seller's agent online");
      await shot("seller-selling-agent");
    });
}

{
  const name = "seller: sets its worker's prices on the Selling page; reputation, prices and earnings shown";
  if (!sellerAgent) skip(name, "no seller agent is running (see the step above)");
  else
    await step(name, async () => {
      const workerId = agentCmd[3];
      await goClient("/selling");
      const card = page.getByRole("list", { name: "Your workers" }).locator(`[data-worker-id="${workerId}"]`);
      await card.waitFor();
      const rep = (await card.getByTestId("worker-reputation").textContent()) ?? "";
      assert(/\d+%/.test(rep), `reputation "${rep}"`);
      await card.getByLabel("Per core-second").fill("0.0002");
      await card.getByLabel("Per GB-second").fill("0.00001");
      await card.getByRole("button", { name: "Set prices" }).click();
      await card.getByTestId("prices-saved").waitFor();
      await waitFor(
        async () => /0\.0002 \/ core-s/.test((await card.getByTestId("worker-price").textContent()) ?? ""),
        10000,
        "the new price on the card",
      );
      const ws = await rest("GET", "/api/v1/workers");
      const mine = (ws.json ?? []).find((w) => w.worker_id === workerId);
      assert(mine && mine.price_per_core_second === 0.0002 && mine.price_per_gb_second === 0.00001, `stored prices ${JSON.stringify(mine)}`);
      await page.getByTestId("statement-earned").waitFor();
      await shot("seller-prices");
    });
}

await rolePass("admin: users (create, disable, limits), keys, grants and the audit log", async () => {
  await signOut();
  await signIn(ADMIN_TOKEN, "Admin token");
  await waitFor(async () => (await sessionRoles()) === "admin", 10000, "the admin role");
  await nav("Users");
  await page.locator(`[data-user-id="${BUYER}"]`).waitFor();
  await page.locator(`[data-user-id="${SELLER}"]`).waitFor();
  await page.getByLabel("New user id").fill("e2e-new");
  await page.getByRole("button", { name: "Create user" }).click();
  const row = page.locator('[data-user-id="e2e-new"]');
  await row.waitFor();
  await page.getByRole("button", { name: "Manage e2e-new" }).click();
  await page.getByLabel("Max pending jobs").fill("5");
  await page.getByRole("button", { name: "Save limits" }).click();
  await waitFor(async () => /max pending jobs: 5/.test((await row.textContent()) ?? ""), 10000, "the limit shown");
  await page.getByRole("button", { name: "Disable user" }).click();
  await waitFor(async () => (await row.getAttribute("data-disabled")) === "true", 10000, "the user disabled");
  await page.getByRole("textbox", { name: "Grant credits" }).fill("2.5");
  await page.getByRole("button", { name: "Grant", exact: true }).click();
  await page.getByRole("button", { name: "Enable user" }).waitFor();
  await page.getByLabel("New key name").fill("ops");
  await page.getByRole("button", { name: "Create key" }).click();
  await page.getByTestId("new-key-token").waitFor();
  await nav("Audit log");
  for (const action of ["user", "key", "grant"])
    await waitFor(
      async () => (await page.getByTestId("audit-row").allTextContents()).some((t) => t.toLowerCase().includes(action)),
      10000,
      `an audit row about ${action}`,
    );
  await roleShots("admin", [
    ["users", "/users"],
    ["audit", "/audit"],
    ["jobs", "/jobs"],
    ["credits", `/credits?user=${BUYER}`],
  ]);
  if (sellerAgent) await stop(sellerAgent);
});

await rolePass("anonymous: a buyer's job in the public view, without output or cancel", async () => {
  await signOut();
  await goClient(`/jobs/${encodeURIComponent(buyerJob ?? jobId)}`);
  await page.getByText("another buyer's job (public view)").waitFor();
  await page.getByText("Output is for the job's buyer").waitFor();
  assert((await page.getByRole("button", { name: "Cancel job" }).count()) === 0, "cancel offered to anonymous");
  // Signed in again as the admin for the rest of the run.
  await signIn(ADMIN_TOKEN, "Admin token");
  await waitFor(async () => (await sessionRoles()) === "admin", 10000, "the admin role");
});

await goClient("/");

await step("stopping the worker shows it offline without a reload", async () => {
  assert(worker, "no worker");
  await nav("Workers");
  await worker.stop();
  const card = page.locator(`[data-worker-id="${WORKER_ID}"]`);
  await waitFor(async () => (await card.getAttribute("data-status")) === "offline", (WORKER_TIMEOUT + 20) * 1000, "worker offline");
  assert(await page.evaluate(() => window.__e2eNoReload === true), "the page was reloaded");
  await shot("workers-offline");
});

await step("restarting the coordinator: the dashboard shows it and reconnects by itself", async () => {
  expectNetworkErrors = true;
  const before = await connState();
  await stop(coord);
  await waitFor(async () => ["connecting", "offline"].includes(await connState()), 15000, "the connection loss shown");
  await shot("reconnecting");
  coord = await startCoordinator();
  await waitFor(async () => (await connState()) === before, 40000, `state back to ${before}`);
  // Data from the restarted coordinator reaches the page: the job is still listed.
  await nav("Jobs");
  await page.locator(`[data-job-id="${jobId}"]`).waitFor();
  assert(await page.evaluate(() => window.__e2eNoReload === true), "the page was reloaded");
  expectNetworkErrors = false;
});

{
  const name = "the connection is live over cacheout.dashboard.v1 (not REST polling)";
  const s = await connState();
  if (s !== "live" && env.E2E_ALLOW_POLLING === "1") {
    skip(name, `connection state is "${s}": the coordinator's /ws/dashboard sent no dashboard.v1 snapshot (E2E_ALLOW_POLLING=1)`);
  } else {
    await step(name, async () => {
      assert(s === "live", `connection state is "${s}": the coordinator's /ws/dashboard sent no dashboard.v1 snapshot`);
    });
  }
}

await step("phone width: pages fit without horizontal scrolling", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [name, path] of [["overview", "/"], ["jobs", "/jobs"], ["submit", "/submit"], ["workers", "/workers"], ["credits", "/credits?user=default-buyer"], ["job", `/jobs/${encodeURIComponent(jobId ?? "x")}`]]) {
    await page.evaluate((p) => {
      history.pushState({}, "", p);
      dispatchEvent(new PopStateEvent("popstate"));
    }, path);
    await sleep(800);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    await shot(`phone-${name}`);
    assert(overflow <= 1, `${path} is ${overflow}px wider than the phone screen`);
  }
  await page.setViewportSize({ width: 1280, height: 860 });
});

await step("no credential in any URL the page asked for (REST, WebSocket, assets)", async () => {
  const secrets = [ADMIN_TOKEN, buyerKey, sellerKey, agentCmd?.[2]].filter(Boolean);
  assert(seenUrls.length > 0, "no requests recorded");
  const leaks = seenUrls.filter((u) => secrets.some((t) => u.includes(t) || u.includes(encodeURIComponent(t))));
  assert(leaks.length === 0, `${leaks.length} URLs carry a credential, e.g. ${leaks[0]?.replace(/[?#].*/, "?…")}`);
  assert(!seenUrls.some((u) => /[?&]token=/.test(u)), "a URL has a token= parameter");
});

await step("no console errors", async () => {
  assert(consoleErrors.length === 0, consoleErrors.slice(0, 5).join(" | "));
});

await context.close();
if (worker && WORKER_MODE === "http") await worker.stop();
await stop(coord);
finish();

function finish() {
  cleanup();
  log(`screenshots: ${SHOTS}`);
  if (failed) log(`logs kept in ${work}`);
  else rmSync(work, { recursive: true, force: true });
  if (WORKER_MODE === "http") log("NOTE: E2E_WORKER=http: a poll-API stand-in replaced cacheout-agent; the agent itself was not tested");
  log(`e2e: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exit(failed ? 1 : 0);
}
