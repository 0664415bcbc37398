// The live connection: one cacheout.dashboard.v1 WebSocket with reconnect and backoff, and REST
// polling of jobs, workers and health whenever the socket is not delivering (not yet open,
// closed, behind a proxy that drops WebSockets, or a server without the dashboard stream).
import { useSyncExternalStore } from "react";
import { getHealth, getJobs, getWorkers } from "./api";
import { initialState, reduce, type Action, type DashState } from "./reducer";
import { getToken, subscribeToken } from "./token";
import type { Health, ServerMsg } from "./types";

export const SUBPROTOCOL = "cacheout.dashboard.v1";
export const POLL_MS = 3000;
const SAMPLE_MS = 5000;
const MAX_SAMPLES = 180; // 15 minutes
const RESYNC_TIMEOUT_MS = 5000;
const SNAPSHOT_TIMEOUT_MS = 8000;

/** live: socket delivering events; polling: socket down, REST answering; offline: neither. */
export type ConnState = "connecting" | "live" | "polling" | "offline";

export interface Sample {
  t: number;
  finished: number;
  running: number;
}

export interface LiveView {
  conn: ConnState;
  /** Whether the socket session is an admin session (token accepted). */
  admin: boolean;
  authError: string | null;
  lastError: string | null;
  reconnects: number;
  nextRetryAt: number | null;
  data: DashState;
  samples: Sample[];
}

/** Backoff before reconnect attempt `n` (0-based): 0.5 s doubling to 15 s, plus up to 30% jitter. */
export function backoffMs(n: number, rand: () => number = Math.random): number {
  const base = Math.min(15000, 500 * 2 ** Math.min(n, 10));
  return Math.round(base * (1 + 0.3 * rand()));
}

function finishedOf(h: Health | null): number | null {
  if (!h?.jobs) return null;
  // Jobs that ran to an end; cancelled ones did no work and do not count as throughput.
  return (h.jobs.completed ?? 0) + (h.jobs.failed ?? 0);
}

export class LiveClient {
  private view: LiveView;
  private listeners = new Set<() => void>();
  private ws: WebSocket | null = null;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private pollTimer: ReturnType<typeof setTimeout> | null = null;
  private sampleTimer: ReturnType<typeof setInterval> | null = null;
  private resyncTimer: ReturnType<typeof setTimeout> | null = null;
  private snapshotTimer: ReturnType<typeof setTimeout> | null = null;
  private polling = false;
  private stopped = true;
  private unsubToken: (() => void) | null = null;
  private sentToken = "";

  constructor() {
    this.view = {
      conn: "connecting",
      admin: false,
      authError: null,
      lastError: null,
      reconnects: 0,
      nextRetryAt: null,
      data: initialState(),
      samples: [],
    };
  }

  getView = (): LiveView => this.view;

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  private set(patch: Partial<LiveView>): void {
    this.view = { ...this.view, ...patch };
    for (const l of this.listeners) l();
  }

  dispatch(action: Action): void {
    const data = reduce(this.view.data, action);
    if (data !== this.view.data) this.set({ data });
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
    this.schedulePoll(0);
    this.sampleTimer = setInterval(() => this.sample(), SAMPLE_MS);
    this.unsubToken = subscribeToken(() => this.onTokenChange());
  }

  stop(): void {
    this.stopped = true;
    for (const t of [this.retryTimer, this.pollTimer, this.resyncTimer, this.snapshotTimer])
      if (t) clearTimeout(t);
    if (this.sampleTimer) clearInterval(this.sampleTimer);
    this.retryTimer = this.pollTimer = this.resyncTimer = this.snapshotTimer = null;
    this.sampleTimer = null;
    this.unsubToken?.();
    this.unsubToken = null;
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000, "page closed");
  }

  /** Drops the socket and connects again now (used by the "Reconnect" button). */
  reconnectNow(): void {
    this.attempt = 0;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000, "reconnect");
    this.onSocketGone("reconnecting");
    this.connect();
  }

  private url(): string {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return `${proto}//${location.host}/ws/dashboard`;
  }

  private connect(): void {
    if (this.stopped) return;
    this.retryTimer = null;
    this.set({ nextRetryAt: null, conn: this.view.conn === "live" ? "connecting" : this.view.conn });
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url(), SUBPROTOCOL);
    } catch (e) {
      this.set({ lastError: (e as Error).message });
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.sentToken = getToken();
      if (this.sentToken) this.send({ type: "auth", token: this.sentToken });
      // A server that accepts the socket but never sends a snapshot is not live.
      this.snapshotTimer = setTimeout(() => {
        if (this.ws === ws && this.view.conn !== "live") {
          this.set({ lastError: "no snapshot from the coordinator" });
          ws.close(4000, "no snapshot");
        }
      }, SNAPSHOT_TIMEOUT_MS);
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.onMessage(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.onSocketGone(ev.reason || `socket closed (${ev.code})`);
      this.scheduleReconnect();
    };
    // onerror is always followed by onclose; nothing to do here.
    ws.onerror = () => undefined;
  }

  private onSocketGone(reason: string): void {
    if (this.snapshotTimer) clearTimeout(this.snapshotTimer);
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.snapshotTimer = this.resyncTimer = null;
    this.dispatch({ kind: "socket-closed" });
    const wasLive = this.view.conn === "live";
    this.set({
      conn: wasLive ? "connecting" : this.view.conn,
      admin: false,
      lastError: reason,
    });
    if (!this.pollTimer && !this.polling) this.schedulePoll(0);
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer) return;
    const delay = backoffMs(this.attempt++);
    this.set({ nextRetryAt: Date.now() + delay, reconnects: this.view.reconnects + 1 });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private send(msg: unknown): void {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  private onMessage(raw: unknown): void {
    if (typeof raw !== "string") return;
    let msg: ServerMsg;
    try {
      msg = JSON.parse(raw) as ServerMsg;
    } catch {
      return;
    }
    if (!msg || typeof msg !== "object" || typeof msg.type !== "string") return;
    const now = Date.now();
    switch (msg.type) {
      case "snapshot":
        if (typeof msg.seq !== "number" || !Array.isArray(msg.jobs) || !Array.isArray(msg.workers)) return;
        if (this.snapshotTimer) clearTimeout(this.snapshotTimer);
        if (this.resyncTimer) clearTimeout(this.resyncTimer);
        this.snapshotTimer = this.resyncTimer = null;
        this.attempt = 0; // reset backoff only once the server has really delivered
        this.dispatch({ kind: "snapshot", msg, now });
        this.set({
          conn: "live",
          lastError: null,
          admin: msg.session?.admin ?? this.view.admin,
        });
        this.sample();
        return;
      case "auth.result":
        this.set({
          admin: !!(msg.ok && (msg.admin ?? true)),
          authError: msg.ok ? null : (msg.error?.message ?? "admin token rejected"),
        });
        return;
      case "error":
        this.set({ lastError: msg.error?.message ?? "error from the coordinator" });
        return;
      default:
        if (typeof (msg as { seq?: unknown }).seq !== "number") return;
        this.dispatch({ kind: "event", msg, now });
        if (this.view.data.needResync && !this.resyncTimer) {
          this.send({ type: "resync" });
          const ws = this.ws;
          this.resyncTimer = setTimeout(() => {
            this.resyncTimer = null;
            if (this.ws === ws && this.view.data.needResync) ws?.close(4001, "resync timeout");
          }, RESYNC_TIMEOUT_MS);
        }
    }
  }

  private onTokenChange(): void {
    const token = getToken();
    if (token === this.sentToken) return;
    if (token && this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.sentToken = token;
      this.set({ authError: null });
      this.send({ type: "auth", token });
    } else if (!token && this.ws) {
      // Dropping admin rights: start a fresh, read-only session.
      this.reconnectNow();
    }
  }

  private schedulePoll(delay: number): void {
    if (this.stopped) return;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      void this.poll();
    }, delay);
  }

  /** Fetches jobs, workers and health while the socket is not live; also fetches pricing once. */
  private async poll(): Promise<void> {
    if (this.stopped) return;
    const live = this.view.conn === "live";
    if (live && this.view.data.pricing) return; // the socket keeps everything current
    this.polling = true;
    try {
      if (live) {
        const health = await getHealth().catch(() => null);
        if (health?.metrics?.pricing) this.dispatch({ kind: "pricing", pricing: health.metrics.pricing });
        return;
      }
      const [jobs, workers, health] = await Promise.allSettled([
        getJobs({ limit: "100" }),
        getWorkers(),
        getHealth(),
      ]);
      if (this.view.conn === "live") return; // the socket came up meanwhile: its data wins
      const ok = jobs.status === "fulfilled" || workers.status === "fulfilled" || health.status === "fulfilled";
      this.dispatch({
        kind: "rest",
        jobs: jobs.status === "fulfilled" ? jobs.value : undefined,
        workers: workers.status === "fulfilled" ? workers.value : undefined,
        health: health.status === "fulfilled" ? health.value : undefined,
        now: Date.now(),
      });
      const failed = [jobs, workers, health].find((r) => r.status === "rejected") as
        | PromiseRejectedResult
        | undefined;
      this.set({
        conn: ok ? "polling" : "offline",
        lastError: failed ? String((failed.reason as Error)?.message ?? failed.reason) : this.view.lastError,
      });
      if (health.status === "fulfilled") this.sample();
    } finally {
      this.polling = false;
      if (this.view.conn !== "live") this.schedulePoll(POLL_MS);
      else if (!this.view.data.pricing) this.schedulePoll(30000);
    }
  }

  private sample(): void {
    const h = this.view.data.health;
    const finished = finishedOf(h);
    if (finished === null || !h) return;
    const now = Date.now();
    const last = this.view.samples[this.view.samples.length - 1];
    if (last && now - last.t < SAMPLE_MS / 2) return;
    const s: Sample = { t: now, finished, running: h.jobs?.running ?? 0 };
    this.set({ samples: [...this.view.samples, s].slice(-MAX_SAMPLES) });
  }
}

/** The one live client of the page. */
export const live = new LiveClient();

export function useLive(): LiveView {
  return useSyncExternalStore(live.subscribe, live.getView, live.getView);
}

/** Jobs finished per minute from samples, over a trailing window of one minute. */
export function ratePerMinute(samples: Sample[]): { t: number; rate: number; running: number }[] {
  const out: { t: number; rate: number; running: number }[] = [];
  let j = 0;
  for (let i = 0; i < samples.length; i++) {
    while (j < i && samples[i].t - samples[j].t > 60000) j++;
    const a = samples[j];
    const b = samples[i];
    const dt = b.t - a.t;
    // Over a full minute: the rate scaled to a minute; before a minute of samples exists: the
    // count finished so far (not extrapolated from a few seconds).
    const done = b.finished - a.finished;
    const rate = dt >= 60000 ? (done * 60000) / dt : done;
    out.push({ t: b.t, rate: Math.max(0, rate), running: b.running });
  }
  return out;
}
