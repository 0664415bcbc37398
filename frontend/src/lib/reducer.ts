// Pure functions that apply cacheout.dashboard.v1 messages and REST answers to the data the
// query cache holds (the cache is the one owner of server state; src/lib/live.ts writes these
// results into it). No I/O, no clock: the caller passes the time, so they are tested exactly
// (tests/reducer.test.ts).
import type { Job, JobStatus, Worker } from "./types";

/** How many jobs the live list keeps (the snapshot brings the 100 newest; events add more). */
export const MAX_JOBS = 500;
/** Per-stream cap on the output the client keeps for one job (characters). */
export const MAX_OUTPUT_CHARS = 1 << 20;

/* ---- sequence numbers ---- */

export interface SeqState {
  /** Sequence number of the last applied message; null before the first snapshot. */
  seq: number | null;
  /** Set when a gap was seen: events are ignored until the next snapshot. */
  needResync: boolean;
  /** Number of gaps seen since start (shown in the connection details). */
  gaps: number;
}

export const initialSeq = (): SeqState => ({ seq: null, needResync: false, gaps: 0 });

/**
 * Decides what to do with event number @seq: apply it (the next one), drop it (a duplicate, or
 * no snapshot to place it on), or note a gap (the caller then asks for a resync).
 */
export function sequence(s: SeqState, seq: number): { state: SeqState; apply: boolean } {
  if (s.seq === null || s.needResync) return { state: s, apply: false };
  if (seq <= s.seq) return { state: s, apply: false };
  if (seq !== s.seq + 1) return { state: { ...s, needResync: true, gaps: s.gaps + 1 }, apply: false };
  return { state: { ...s, seq }, apply: true };
}

/* ---- jobs ---- */

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

/**
 * The job to keep when @next arrives for @prev. Fields @next lacks (e.g. `code`, or everything
 * but the public view's fields) are kept from @prev. With @checkAge (REST answers), an older
 * state does not replace a newer one.
 */
export function mergeJob(prev: Job | undefined, next: Job, checkAge: boolean): Job {
  if (!prev) return next;
  if (checkAge && !isNotOlder(prev, next)) return prev;
  return { ...prev, ...next };
}

function compareJobs(a: Job, b: Job): number {
  const ta = a.created_at ?? "";
  const tb = b.created_at ?? "";
  if (ta !== tb) return ta < tb ? 1 : -1;
  return a.job_id < b.job_id ? 1 : a.job_id > b.job_id ? -1 : 0;
}

/** Newest first, at most MAX_JOBS. */
export function sortJobs(jobs: Job[]): Job[] {
  return jobs.slice().sort(compareJobs).slice(0, MAX_JOBS);
}

/** @jobs with @job added or merged in (see mergeJob); the same array when nothing changed. */
export function upsertJob(jobs: Job[] | undefined, job: Job, checkAge: boolean): Job[] {
  const list = jobs ?? [];
  const idx = list.findIndex((j) => j.job_id === job.job_id);
  if (idx < 0) return sortJobs([job, ...list]);
  const merged = mergeJob(list[idx], job, checkAge);
  if (merged === list[idx]) return list;
  const next = list.slice();
  next[idx] = merged;
  return next;
}

/* ---- workers ---- */

export function sortWorkers(workers: Worker[]): Worker[] {
  return workers.slice().sort((a, b) => (a.worker_id < b.worker_id ? -1 : a.worker_id > b.worker_id ? 1 : 0));
}

export function upsertWorker(workers: Worker[] | undefined, w: Worker): Worker[] {
  const list = workers ?? [];
  const idx = list.findIndex((x) => x.worker_id === w.worker_id);
  if (idx < 0) return sortWorkers([...list, w]);
  const next = list.slice();
  next[idx] = { ...list[idx], ...w };
  return next;
}

export function removeWorker(workers: Worker[] | undefined, id: string): Worker[] {
  return (workers ?? []).filter((w) => w.worker_id !== id);
}

/* ---- timeline: the statuses the client saw for a job ---- */

export interface Transition {
  status: JobStatus;
  at: number;
}

/** @list with @status appended at @now unless it is already the last one (at most 50 kept). */
export function recordTransition(list: Transition[] | undefined, status: JobStatus, now: number): Transition[] {
  const l = list ?? [];
  if (l.length && l[l.length - 1].status === status) return l;
  return [...l, { status, at: now }].slice(-50);
}

/* ---- job output ---- */

export interface StreamBuf {
  text: string;
  /** Byte offset in the job's stream that the next chunk must start at. */
  next: number;
}
export interface JobOutput {
  stdout: StreamBuf;
  stderr: StreamBuf;
  /** A chunk was missed: the whole output must be fetched over REST again. */
  gap: boolean;
  truncated: boolean;
}

export function emptyOutput(): JobOutput {
  return { stdout: { text: "", next: 0 }, stderr: { text: "", next: 0 }, gap: false, truncated: false };
}

function capText(text: string): string {
  return text.length > MAX_OUTPUT_CHARS ? text.slice(text.length - MAX_OUTPUT_CHARS) : text;
}

const utf8 = new TextEncoder();

/** Byte length of a string as UTF-8 (the unit of job.output offsets). */
export function byteLength(s: string): number {
  return utf8.encode(s).length;
}

/** Appends a live chunk; a chunk past the end marks a gap, one already held is dropped. */
export function applyOutputChunk(
  out: JobOutput | undefined,
  stream: "stdout" | "stderr",
  offset: number,
  data: string,
  bytes: number = byteLength(data),
): JobOutput {
  const o = out ?? emptyOutput();
  const buf = o[stream];
  if (offset + bytes <= buf.next) return o; // already have all of it
  if (offset > buf.next) return o.gap ? o : { ...o, gap: true }; // missed a chunk
  let text = data;
  if (offset < buf.next) {
    // Overlap with what we have: drop the bytes we already hold.
    text = new TextDecoder().decode(utf8.encode(data).subarray(buf.next - offset));
  }
  return { ...o, [stream]: { text: capText(buf.text + text), next: offset + bytes } };
}

/** The output to keep when the REST answer @fresh arrives: live chunks win if they are ahead. */
export function restOutput(
  prev: JobOutput | undefined,
  fresh: { stdout?: string | null; stderr?: string | null; truncated?: boolean },
): JobOutput {
  const stdout = fresh.stdout ?? "";
  const stderr = fresh.stderr ?? "";
  const r: JobOutput = {
    stdout: { text: capText(stdout), next: byteLength(stdout) },
    stderr: { text: capText(stderr), next: byteLength(stderr) },
    gap: false,
    truncated: !!fresh.truncated,
  };
  if (prev && !prev.gap && prev.stdout.next >= r.stdout.next && prev.stderr.next >= r.stderr.next) return prev;
  return r;
}
