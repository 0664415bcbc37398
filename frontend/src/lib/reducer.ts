// The dashboard's live state and the pure reducer that applies cacheout.dashboard.v1 messages
// and REST results to it. Pure (no I/O, no clock): the caller passes the time, so it is tested
// exactly (tests/reducer.test.ts).
import type {
  EventMsg,
  Health,
  Job,
  JobStatus,
  Pricing,
  SnapshotMsg,
  Worker,
} from "./types";

/** How many jobs the client keeps (the snapshot brings the 100 newest; events add more). */
export const MAX_JOBS = 500;
/** Per-stream cap on the output the client keeps for one job (characters). */
export const MAX_OUTPUT_CHARS = 1 << 20;

export interface StreamBuf {
  text: string;
  /** Byte offset in the job's stream that the next chunk must start at. */
  next: number;
}
export interface JobOutput {
  stdout: StreamBuf;
  stderr: StreamBuf;
  /** A chunk was missed: the page should fetch the whole output over REST again. */
  gap: boolean;
  truncated: boolean;
}
export interface Transition {
  status: JobStatus;
  at: number;
}

export interface DashState {
  /** Sequence number of the last applied message; null before the first snapshot. */
  seq: number | null;
  /** Where the lists came from last: the socket, REST polling, or nowhere yet. */
  source: "none" | "ws" | "rest";
  /** Set when a sequence gap was seen: events are ignored until the next snapshot. */
  needResync: boolean;
  /** Set when a snapshot or REST poll has been applied at least once. */
  loaded: boolean;
  jobs: Job[];
  workers: Worker[];
  health: Health | null;
  pricing: Pricing | null;
  credits: Record<string, { credits: number | string; held?: number | string }>;
  output: Record<string, JobOutput>;
  history: Record<string, Transition[]>;
  /** Client time (ms) of the last message applied. */
  updatedAt: number;
  /** Number of gaps seen since start (shown in the connection details). */
  gaps: number;
}

export type Action =
  | { kind: "snapshot"; msg: SnapshotMsg; now: number }
  | { kind: "event"; msg: EventMsg; now: number }
  | {
      kind: "rest";
      jobs?: Job[];
      workers?: Worker[];
      health?: Health;
      now: number;
    }
  | { kind: "job"; job: Job; now: number }
  | {
      kind: "output";
      jobId: string;
      stdout: string;
      stderr: string;
      truncated: boolean;
    }
  | { kind: "pricing"; pricing: Pricing }
  | { kind: "credits"; userId: string; credits: number | string; held?: number | string }
  | { kind: "socket-closed" };

export function initialState(): DashState {
  return {
    seq: null,
    source: "none",
    needResync: false,
    loaded: false,
    jobs: [],
    workers: [],
    health: null,
    pricing: null,
    credits: {},
    output: {},
    history: {},
    updatedAt: 0,
    gaps: 0,
  };
}

const STATUS_RANK: Record<JobStatus, number> = {
  pending: 0,
  assigned: 1,
  running: 2,
  completed: 3,
  failed: 3,
  cancelled: 3,
};

/**
 * Whether `next` may replace `prev` when it comes from a source without sequence numbers
 * (a REST answer that may have been in flight while newer events arrived). A job only moves
 * forward within an attempt; a new attempt (lease lost) starts again from pending.
 */
export function isNotOlder(prev: Job, next: Job): boolean {
  const pa = prev.attempts ?? 0;
  const na = next.attempts ?? 0;
  if (na !== pa) return na > pa;
  return (STATUS_RANK[next.status] ?? 0) >= (STATUS_RANK[prev.status] ?? 0);
}

function compareJobs(a: Job, b: Job): number {
  const ta = a.created_at ?? "";
  const tb = b.created_at ?? "";
  if (ta !== tb) return ta < tb ? 1 : -1;
  return a.job_id < b.job_id ? 1 : a.job_id > b.job_id ? -1 : 0;
}

function sortJobs(jobs: Job[]): Job[] {
  return jobs.slice().sort(compareJobs).slice(0, MAX_JOBS);
}

function sortWorkers(workers: Worker[]): Worker[] {
  return workers
    .slice()
    .sort((a, b) => (a.worker_id < b.worker_id ? -1 : a.worker_id > b.worker_id ? 1 : 0));
}

function recordTransition(
  history: Record<string, Transition[]>,
  prev: Job | undefined,
  next: Job,
  now: number,
): Record<string, Transition[]> {
  if (prev && prev.status === next.status) return history;
  const list = history[next.job_id] ?? [];
  const last = list[list.length - 1];
  if (last && last.status === next.status) return history;
  return { ...history, [next.job_id]: [...list, { status: next.status, at: now }].slice(-50) };
}

function upsertJob(state: DashState, job: Job, now: number, checkAge: boolean): DashState {
  const idx = state.jobs.findIndex((j) => j.job_id === job.job_id);
  const prev = idx >= 0 ? state.jobs[idx] : undefined;
  if (prev && checkAge && !isNotOlder(prev, job)) return state;
  let jobs: Job[];
  if (prev) {
    jobs = state.jobs.slice();
    // Keep fields a partial object may lack (e.g. `code`, only in admin answers).
    jobs[idx] = { ...prev, ...job };
  } else {
    jobs = sortJobs([job, ...state.jobs]);
  }
  return {
    ...state,
    jobs,
    history: recordTransition(state.history, prev, job, now),
    updatedAt: now,
  };
}

function upsertWorker(workers: Worker[], w: Worker): Worker[] {
  const idx = workers.findIndex((x) => x.worker_id === w.worker_id);
  if (idx < 0) return sortWorkers([...workers, w]);
  const next = workers.slice();
  next[idx] = { ...workers[idx], ...w };
  return next;
}

function emptyOutput(): JobOutput {
  return {
    stdout: { text: "", next: 0 },
    stderr: { text: "", next: 0 },
    gap: false,
    truncated: false,
  };
}

function capText(text: string): string {
  return text.length > MAX_OUTPUT_CHARS ? text.slice(text.length - MAX_OUTPUT_CHARS) : text;
}

const utf8 = new TextEncoder();

/** Byte length of a string as UTF-8 (the unit of job.output offsets). */
export function byteLength(s: string): number {
  return utf8.encode(s).length;
}

function applyOutputChunk(
  out: JobOutput,
  stream: "stdout" | "stderr",
  offset: number,
  data: string,
  bytes: number,
): JobOutput {
  const buf = out[stream];
  if (offset + bytes <= buf.next) return out; // already have all of it
  if (offset > buf.next) return { ...out, gap: true }; // missed a chunk
  let text = data;
  if (offset < buf.next) {
    // Overlap with what we have: drop the bytes we already hold.
    const skip = buf.next - offset;
    const enc = utf8.encode(data);
    text = new TextDecoder().decode(enc.subarray(skip));
  }
  return {
    ...out,
    [stream]: { text: capText(buf.text + text), next: offset + bytes },
  };
}

function applyEvent(state: DashState, msg: EventMsg, now: number): DashState {
  switch (msg.type) {
    case "job.updated":
      return upsertJob(state, msg.job, now, false);
    case "worker.updated":
      return { ...state, workers: upsertWorker(state.workers, msg.worker), updatedAt: now };
    case "worker.removed":
      return {
        ...state,
        workers: state.workers.filter((w) => w.worker_id !== msg.worker_id),
        updatedAt: now,
      };
    case "credits.updated":
      return {
        ...state,
        credits: { ...state.credits, [msg.user_id]: { credits: msg.credits, held: msg.held } },
        updatedAt: now,
      };
    case "health.updated":
      return { ...state, health: msg.health, updatedAt: now };
    case "job.output": {
      const prev = state.output[msg.job_id] ?? emptyOutput();
      const bytes = typeof msg.bytes === "number" ? msg.bytes : byteLength(msg.data);
      const next = applyOutputChunk(prev, msg.stream, msg.offset, msg.data, bytes);
      if (next === prev) return state;
      return { ...state, output: { ...state.output, [msg.job_id]: next }, updatedAt: now };
    }
    default:
      return state;
  }
}

/** Applies one action; returns the same object when nothing changed. */
export function reduce(state: DashState, action: Action): DashState {
  switch (action.kind) {
    case "snapshot": {
      const m = action.msg;
      let history = state.history;
      const byId = new Map(state.jobs.map((j) => [j.job_id, j]));
      for (const j of m.jobs) history = recordTransition(history, byId.get(j.job_id), j, action.now);
      return {
        ...state,
        seq: m.seq,
        source: "ws",
        needResync: false,
        loaded: true,
        jobs: sortJobs(m.jobs),
        workers: sortWorkers(m.workers),
        health: m.health,
        pricing: m.pricing ?? state.pricing,
        history,
        updatedAt: action.now,
      };
    }
    case "event": {
      const m = action.msg;
      // Before the first snapshot, or while waiting for a new one, events cannot be placed.
      if (state.seq === null || state.needResync) return state;
      if (m.seq <= state.seq) return state; // duplicate or replay
      if (m.seq !== state.seq + 1) {
        return { ...state, needResync: true, gaps: state.gaps + 1 };
      }
      return { ...applyEvent(state, m, action.now), seq: m.seq };
    }
    case "rest": {
      let next: DashState = { ...state, source: "rest", seq: null, needResync: false };
      if (action.jobs) {
        let history = next.history;
        const byId = new Map(state.jobs.map((j) => [j.job_id, j]));
        for (const j of action.jobs) history = recordTransition(history, byId.get(j.job_id), j, action.now);
        next = { ...next, jobs: sortJobs(action.jobs), history };
      }
      if (action.workers) next = { ...next, workers: sortWorkers(action.workers) };
      if (action.health) {
        next = { ...next, health: action.health };
        if (action.health.metrics?.pricing && !state.pricing)
          next = { ...next, pricing: action.health.metrics.pricing };
      }
      return { ...next, loaded: true, updatedAt: action.now };
    }
    case "job":
      return upsertJob(state, action.job, action.now, true);
    case "output": {
      const prev = state.output[action.jobId];
      const fresh: JobOutput = {
        stdout: { text: capText(action.stdout), next: byteLength(action.stdout) },
        stderr: { text: capText(action.stderr), next: byteLength(action.stderr) },
        gap: false,
        truncated: action.truncated,
      };
      // Keep what live chunks brought if it is ahead of the REST answer.
      if (prev && !prev.gap && prev.stdout.next >= fresh.stdout.next && prev.stderr.next >= fresh.stderr.next)
        return state;
      return { ...state, output: { ...state.output, [action.jobId]: fresh } };
    }
    case "pricing":
      return { ...state, pricing: action.pricing };
    case "credits":
      return {
        ...state,
        credits: { ...state.credits, [action.userId]: { credits: action.credits, held: action.held } },
      };
    case "socket-closed":
      // The next snapshot starts a new sequence.
      return { ...state, seq: null, needResync: false };
    default:
      return state;
  }
}
