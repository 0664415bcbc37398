// The live client against a fake WebSocket and fake REST: auth (admin token and user key), gap
// -> resync, resync timeout, reconnect with backoff, REST polling while the socket is down; what
// it brings lands in the query cache.
import { QueryClient } from "@tanstack/react-query";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { setCredential } from "../src/lib/credential";
import { LiveClient, POLL_MS, SUBPROTOCOL } from "../src/lib/live";
import type { Job } from "../src/lib/types";
import { jobKeys } from "../src/queries/jobs";

let qc: QueryClient;
function client(): LiveClient {
  qc = new QueryClient();
  const c = new LiveClient();
  c.attach(qc);
  return c;
}
const jobIds = () => (qc.getQueryData<Job[]>(jobKeys.recent()) ?? []).map((j) => j.job_id);

class FakeWS {
  static OPEN = 1;
  static all: FakeWS[] = [];
  readyState = 0;
  sent: unknown[] = [];
  closed: { code?: number; reason?: string } | null = null;
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(
    public url: string,
    public protocol: string,
  ) {
    FakeWS.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code?: number, reason?: string) {
    this.closed = { code, reason };
    this.readyState = 3;
    this.onclose?.({ code: code ?? 1000, reason: reason ?? "" });
  }
  // test side
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  msg(obj: unknown) {
    this.onmessage?.({ data: JSON.stringify(obj) });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code, reason: "" });
  }
}

const snapshot = (seq: number) => ({
  type: "snapshot",
  seq,
  jobs: [],
  workers: [],
  health: { status: "healthy" },
  pricing: { cost_per_core: 0.1, cost_per_100mb_ram: 0.001 },
});
const jobEvent = (seq: number, id = "j1") => ({
  type: "job.updated",
  seq,
  job: { job_id: id, title: "t", status: "running", required_cores: 1, required_ram_mb: 1 },
});

let restUp = true;
const fetches: string[] = [];

beforeEach(() => {
  vi.useFakeTimers();
  FakeWS.all = [];
  fetches.length = 0;
  restUp = true;
  vi.stubGlobal("WebSocket", FakeWS);
  vi.stubGlobal("location", { protocol: "http:", host: "dash.test" });
  vi.stubGlobal("fetch", async (url: string) => {
    fetches.push(url);
    if (!restUp) throw new TypeError("connection refused");
    const body = url.startsWith("/api/v1/health") ? { status: "healthy", jobs: { running: 0 } } : [];
    return new Response(JSON.stringify(body), { status: 200 });
  });
  setCredential(null);
});
afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe("LiveClient", () => {
  it("connects with the subprotocol and goes live on the snapshot", async () => {
    const c = client();
    c.start();
    const ws = FakeWS.all[0];
    expect(ws.url).toBe("ws://dash.test/ws/dashboard");
    expect(ws.protocol).toBe(SUBPROTOCOL);
    ws.open();
    expect(c.getView().conn).not.toBe("live");
    ws.msg(snapshot(5));
    expect(c.getView().conn).toBe("live");
    expect(c.getView().seq.seq).toBe(5);
    c.stop();
  });

  it("sends the admin token in the first message; another credential starts a new session", async () => {
    setCredential({ kind: "admin", token: "s3cret" });
    const c = client();
    c.start();
    const ws = FakeWS.all[0];
    ws.open();
    expect(ws.sent[0]).toEqual({ type: "auth", token: "s3cret" });
    ws.msg(snapshot(1));
    ws.msg({
      type: "auth.result",
      ok: false,
      admin: false,
      error: { code: "unauthorized", message: "admin token rejected" },
    });
    expect(c.getView().authError).toBe("admin token rejected");
    setCredential({ kind: "admin", token: "better" });
    expect(ws.closed).not.toBeNull(); // nothing of the old session's view survives
    expect(c.getView().authError).toBeNull();
    const ws2 = FakeWS.all[1];
    ws2.open();
    expect(ws2.sent[0]).toEqual({ type: "auth", token: "better" });
    ws2.msg(snapshot(1));
    ws2.msg({ type: "auth.result", ok: true, admin: true });
    expect(c.getView().admin).toBe(true);
    expect(ws2.sent.length).toBe(1); // an admin session needs no new snapshot
    c.stop();
  });

  it("sends a user key as bearer, never in the URL, and asks for its own view once accepted", () => {
    setCredential({ kind: "key", token: "co_abc" });
    const c = client();
    c.start();
    const ws = FakeWS.all[0];
    expect(ws.url).toBe("ws://dash.test/ws/dashboard");
    ws.open();
    expect(ws.sent[0]).toEqual({ type: "auth", bearer: "co_abc" });
    ws.msg(snapshot(1));
    ws.msg({ type: "auth.result", ok: true, admin: false, user_id: "alice" });
    expect(c.getView().admin).toBe(false);
    expect(c.getView().sessionUser).toBe("alice");
    expect(ws.sent[1]).toEqual({ type: "resync" });
    setCredential(null);
    const ws2 = FakeWS.all[1];
    ws2.open();
    expect(ws2.sent).toEqual([]); // signed out: no auth message at all
    c.stop();
  });

  it("asks for a snapshot on a gap, once, and resumes from it", () => {
    const c = client();
    c.start();
    const ws = FakeWS.all[0];
    ws.open();
    ws.msg(snapshot(10));
    ws.msg(jobEvent(11));
    expect(ws.sent).toEqual([]);
    ws.msg(jobEvent(13, "j2"));
    ws.msg(jobEvent(14, "j3"));
    expect(ws.sent).toEqual([{ type: "resync" }]);
    expect(jobIds()).toEqual(["j1"]);
    ws.msg(snapshot(14));
    expect(c.getView().seq.needResync).toBe(false);
    ws.msg(jobEvent(15, "j4"));
    expect(c.getView().seq.seq).toBe(15);
    expect(jobIds()).toEqual(["j4"]);
    c.stop();
  });

  it("reconnects when the resync is not answered", async () => {
    const c = client();
    c.start();
    const ws = FakeWS.all[0];
    ws.open();
    ws.msg(snapshot(1));
    ws.msg(jobEvent(3));
    await vi.advanceTimersByTimeAsync(5100);
    expect(ws.closed?.code).toBe(4001);
    await vi.advanceTimersByTimeAsync(1000); // first backoff is 0.5-0.65 s
    expect(FakeWS.all.length).toBe(2);
    c.stop();
  });

  it("closes a socket that never sends a snapshot", async () => {
    const c = client();
    c.start();
    const ws = FakeWS.all[0];
    ws.open();
    ws.msg({ type: "snapshot", seq: 3, jobs: { pending: 1 } }); // not a dashboard.v1 snapshot
    await vi.advanceTimersByTimeAsync(8100);
    expect(ws.closed?.code).toBe(4000);
    expect(c.getView().conn).not.toBe("live");
    c.stop();
  });

  it("polls REST while the socket is down and shows polling, then offline", async () => {
    const c = client();
    c.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(fetches.some((u) => u.startsWith("/api/v1/jobs"))).toBe(true);
    expect(c.getView().conn).toBe("polling");
    expect(qc.getQueryData(jobKeys.recent())).toEqual([]);
    restUp = false;
    await vi.advanceTimersByTimeAsync(POLL_MS + 10);
    expect(c.getView().conn).toBe("offline");
    c.stop();
  });

  it("stops polling when live and backs off between failed connections", async () => {
    const c = client();
    c.start();
    FakeWS.all[0].open();
    FakeWS.all[0].msg(snapshot(1));
    await vi.advanceTimersByTimeAsync(10);
    const n = fetches.filter((u) => u.startsWith("/api/v1/jobs")).length;
    await vi.advanceTimersByTimeAsync(POLL_MS * 3);
    expect(fetches.filter((u) => u.startsWith("/api/v1/jobs")).length).toBe(n);

    // The coordinator goes away: each failed attempt waits longer than the one before.
    FakeWS.all[0].drop();
    expect(c.getView().conn).not.toBe("live");
    const gaps: number[] = [];
    for (let i = 0; i < 4; i++) {
      const before = FakeWS.all.length;
      let waited = 0;
      while (FakeWS.all.length === before) {
        await vi.advanceTimersByTimeAsync(50);
        waited += 50;
      }
      gaps.push(waited);
      FakeWS.all[FakeWS.all.length - 1].drop();
    }
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]).toBeGreaterThan(gaps[i - 1]);
    // A snapshot resets the backoff.
    const last = FakeWS.all[FakeWS.all.length - 1];
    await vi.advanceTimersByTimeAsync(20000);
    const next = FakeWS.all[FakeWS.all.length - 1];
    expect(next).not.toBe(last);
    next.open();
    next.msg(snapshot(1));
    expect(c.getView().conn).toBe("live");
    next.drop();
    const before = FakeWS.all.length;
    await vi.advanceTimersByTimeAsync(700);
    expect(FakeWS.all.length).toBe(before + 1);
    c.stop();
  });
});
