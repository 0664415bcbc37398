// The live connection: one cacheout.dashboard.v1 WebSocket with reconnect and backoff, and REST
// polling of jobs, workers and health whenever the socket is not delivering (not yet open,
// closed, behind a proxy that drops WebSockets, or a server without the dashboard stream).
import type { QueryClient } from "@tanstack/react-query";
import { useSyncExternalStore } from "react";
import { healthKeys } from "../queries/health";
import { getHealth, getJobs, getWorkers } from "./api";
import { getCredential, subscribeCredential, wsAuthMessage, type Credential } from "./credential";
import { applyEvent, applyRest, applySnapshot, setLiveDefaults } from "./liveCache";
import { initialSeq, type SeqState } from "./reducer";
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

/**
 * The connection, not the data: the data (jobs, workers, health, credits, output) lives in the
 * query cache, where this client writes it.
 */
export interface LiveView {
  conn: ConnState;
  /** Whether the socket session is an admin session (credential accepted as admin). */
  admin: boolean;
  /** The user the socket session acts for, when the coordinator says so. */
  sessionUser: string | null;
  authError: string | null;
  lastError: string | null;
  reconnects: number;
  nextRetryAt: number | null;
  seq: SeqState;
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
  private unsubCredential: (() => void) | null = null;
  private sentCredential: Credential | null = null;
  private qc: QueryClient | null = null;
  private generation = 0;

  constructor() {
    this.view = {
      conn: "connecting",
      admin: false,
      sessionUser: null,
      authError: null,
      lastError: null,
      reconnects: 0,
      nextRetryAt: null,
      seq: initialSeq(),
      samples: [],
    };
  }

  /** The cache this client writes into (call once, before start). */
  attach(qc: QueryClient): void {
    this.qc = qc;
    setLiveDefaults(qc);
  }

  private cache(): QueryClient {
    if (!this.qc) throw new Error("LiveClient: attach(queryClient) before start()");
    return this.qc;
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

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
    this.schedulePoll(0);
    this.sampleTimer = setInterval(() => this.sample(), SAMPLE_MS);
    this.unsubCredential = subscribeCredential(() => this.onCredentialChange());
  }

  stop(): void {
    this.stopped = true;
    for (const t of [this.retryTimer, this.pollTimer, this.resyncTimer, this.snapshotTimer]) if (t) clearTimeout(t);
    if (this.sampleTimer) clearInterval(this.sampleTimer);
    this.retryTimer = this.pollTimer = this.resyncTimer = this.snapshotTimer = null;
    this.sampleTimer = null;
    this.unsubCredential?.();
    this.unsubCredential = null;
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
      this.sentCredential = getCredential();
      if (this.sentCredential) this.send(wsAuthMessage(this.sentCredential));
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
    const wasLive = this.view.conn === "live";
    // The next snapshot starts a new sequence.
    this.set({
      conn: wasLive ? "connecting" : this.view.conn,
      admin: false,
      sessionUser: null,
      lastError: reason,
      seq: { ...this.view.seq, seq: null, needResync: false },
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
    switch (msg.type) {
      case "snapshot":
        if (typeof msg.seq !== "number" || !Array.isArray(msg.jobs) || !Array.isArray(msg.workers)) return;
        if (this.snapshotTimer) clearTimeout(this.snapshotTimer);
        if (this.resyncTimer) clearTimeout(this.resyncTimer);
        this.snapshotTimer = this.resyncTimer = null;
        this.attempt = 0; // reset backoff only once the server has really delivered
        this.set({
          seq: applySnapshot(this.cache(), this.view.seq, msg),
          conn: "live",
          lastError: null,
          admin: msg.session?.admin ?? this.view.admin,
          sessionUser: msg.session?.user_id ?? this.view.sessionUser,
        });
        this.sample();
        return;
      case "auth.result":
        this.set({
          admin: !!(msg.ok && (msg.admin ?? this.sentCredential?.kind === "admin")),
          sessionUser: msg.ok ? (msg.user_id ?? this.view.sessionUser) : null,
          authError: msg.ok ? null : (msg.error?.message ?? "credential rejected"),
        });
        // What a session may see depends on who it is: a user key's session asks for a
        // snapshot of its own view (the first one was the anonymous view).
        if (msg.ok && this.sentCredential?.kind === "key") this.requestResync();
        return;
      case "error":
        this.set({ lastError: msg.error?.message ?? "error from the coordinator" });
        return;
      default:
        if (typeof (msg as { seq?: unknown }).seq !== "number") return;
        {
          const seq = applyEvent(this.cache(), this.view.seq, msg);
          if (seq !== this.view.seq) this.set({ seq });
        }
        if (this.view.seq.needResync) this.requestResync();
    }
  }

  /** Sends one resync; a snapshot must follow within RESYNC_TIMEOUT_MS or the socket is dropped. */
  private requestResync(): void {
    if (this.resyncTimer) return;
    this.send({ type: "resync" });
    const ws = this.ws;
    this.resyncTimer = setTimeout(() => {
      this.resyncTimer = null;
      if (this.ws === ws) ws?.close(4001, "resync timeout");
    }, RESYNC_TIMEOUT_MS);
  }

  /** Another credential (or none): a fresh session, so nothing of the old one's view remains. */
  private onCredentialChange(): void {
    const c = getCredential();
    if (c?.kind === this.sentCredential?.kind && c?.token === this.sentCredential?.token) return;
    this.sentCredential = null;
    this.generation++; // REST answers in flight belong to the old credential
    this.set({ authError: null });
    this.reconnectNow();
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
    const qc = this.cache();
    const havePricing = () => qc.getQueryData(healthKeys.pricing) != null;
    if (live && havePricing()) return; // the socket keeps everything current
    this.polling = true;
    const gen = this.generation;
    try {
      if (live) {
        const health = await getHealth().catch(() => null);
        if (health?.metrics?.pricing) qc.setQueryData(healthKeys.pricing, health.metrics.pricing);
        return;
      }
      const [jobs, workers, health] = await Promise.allSettled([getJobs({ limit: "100" }), getWorkers(), getHealth()]);
      if (this.view.conn === "live") return; // the socket came up meanwhile: its data wins
      if (gen !== this.generation) return; // asked with another credential
      const ok = jobs.status === "fulfilled" || workers.status === "fulfilled" || health.status === "fulfilled";
      applyRest(qc, {
        jobs: jobs.status === "fulfilled" ? jobs.value : undefined,
        workers: workers.status === "fulfilled" ? workers.value : undefined,
        health: health.status === "fulfilled" ? health.value : undefined,
      });
      const failed = [jobs, workers, health].find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
      this.set({
        conn: ok ? "polling" : "offline",
        lastError: failed ? String((failed.reason as Error)?.message ?? failed.reason) : this.view.lastError,
      });
      if (health.status === "fulfilled") this.sample();
    } finally {
      this.polling = false;
      if (this.view.conn !== "live") this.schedulePoll(POLL_MS);
      else if (!havePricing()) this.schedulePoll(30000);
    }
  }

  private sample(): void {
    const h = this.qc?.getQueryData<Health>(healthKeys.health) ?? null;
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
