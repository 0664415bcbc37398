// Writes what the live connection brings into the query cache, the one owner of server state:
// snapshots and events of cacheout.dashboard.v1 (in sequence, gaps detected) and the REST answers
// of the polling fallback. Pages read the same cache entries through src/queries/.
import type { QueryClient } from "@tanstack/react-query";
import { creditKeys } from "../queries/credits";
import { healthKeys } from "../queries/health";
import { jobKeys } from "../queries/jobs";
import { ledgerKeys } from "../queries/ledger";
import { statementKeys } from "../queries/statement";
import { workerKeys } from "../queries/workers";
import {
  applyOutputChunk,
  byteLength,
  mergeJob,
  removeWorker,
  sequence,
  sortJobs,
  sortWorkers,
  upsertJob,
  upsertWorker,
  type JobOutput,
  type SeqState,
} from "./reducer";
import {
  FINISHED_STATUSES,
  type CreditBalance,
  type EventMsg,
  type Health,
  type Job,
  type SnapshotMsg,
  type Worker,
} from "./types";

const LIVE_KEYS: readonly (readonly string[])[] = [
  jobKeys.recent(),
  workerKeys.all,
  healthKeys.health,
  healthKeys.pricing,
];

/** Entries only the live client writes: kept however long no page looks at them. */
export function setLiveDefaults(qc: QueryClient): void {
  for (const key of LIVE_KEYS) qc.setQueryDefaults(key, { gcTime: Infinity, staleTime: Infinity });
}

/** Whether @key is one of the entries only the live client writes. */
export function isLiveKey(key: readonly unknown[]): boolean {
  return LIVE_KEYS.some((k) => k.length === key.length && k.every((part, i) => part === key[i]));
}

/** Updates the cached detail of a job when a page holds one. */
function updateDetail(qc: QueryClient, job: Job, checkAge: boolean): void {
  const key = jobKeys.detail(job.job_id);
  const prev = qc.getQueryData<Job>(key);
  if (prev === undefined) return;
  const next = mergeJob(prev, job, checkAge);
  if (next !== prev) qc.setQueryData(key, next);
  // A job that just finished has its whole output: fetch it if a page shows it.
  if (FINISHED_STATUSES.includes(job.status) && !FINISHED_STATUSES.includes(prev.status))
    void qc.invalidateQueries({ queryKey: jobKeys.output(job.job_id) });
}

function setHealth(qc: QueryClient, health: Health): void {
  qc.setQueryData(healthKeys.health, health);
  if (health.metrics?.pricing && qc.getQueryData(healthKeys.pricing) == null)
    qc.setQueryData(healthKeys.pricing, health.metrics.pricing);
}

/** A snapshot replaces the live lists and starts a new sequence. */
export function applySnapshot(qc: QueryClient, seq: SeqState, msg: SnapshotMsg): SeqState {
  qc.setQueryData(jobKeys.recent(), sortJobs(msg.jobs));
  for (const j of msg.jobs) updateDetail(qc, j, false);
  qc.setQueryData(workerKeys.all, sortWorkers(msg.workers));
  setHealth(qc, msg.health);
  if (msg.pricing) qc.setQueryData(healthKeys.pricing, msg.pricing);
  return { ...seq, seq: msg.seq, needResync: false };
}

/** Applies event @msg if it is the next in sequence; returns the new sequence state. */
export function applyEvent(qc: QueryClient, seq: SeqState, msg: EventMsg): SeqState {
  const r = sequence(seq, msg.seq);
  if (!r.apply) return r.state;
  switch (msg.type) {
    case "job.updated":
      qc.setQueryData<Job[]>(jobKeys.recent(), (prev) => upsertJob(prev, msg.job, false));
      updateDetail(qc, msg.job, false);
      break;
    case "worker.updated":
      qc.setQueryData<Worker[]>(workerKeys.all, (prev) => upsertWorker(prev, msg.worker));
      break;
    case "worker.removed":
      qc.setQueryData<Worker[]>(workerKeys.all, (prev) => removeWorker(prev, msg.worker_id));
      break;
    case "credits.updated":
      qc.setQueryData<CreditBalance>(creditKeys.user(msg.user_id), {
        user_id: msg.user_id,
        credits: msg.credits,
        held: msg.held,
      });
      void qc.invalidateQueries({ queryKey: ledgerKeys.user(msg.user_id) });
      void qc.invalidateQueries({ queryKey: [...statementKeys.all, msg.user_id] });
      break;
    case "health.updated":
      setHealth(qc, msg.health);
      break;
    case "job.output": {
      const key = jobKeys.output(msg.job_id);
      const prev = qc.getQueryData<JobOutput>(key);
      // Only for a page that shows this output: others fetch it whole when they open.
      if (prev === undefined) break;
      const bytes = typeof msg.bytes === "number" ? msg.bytes : byteLength(msg.data);
      const next = applyOutputChunk(prev, msg.stream, msg.offset, msg.data, bytes);
      if (next === prev) break;
      qc.setQueryData(key, next);
      if (next.gap && !prev.gap) void qc.invalidateQueries({ queryKey: key });
      break;
    }
  }
  return r.state;
}

/** REST answers of the polling fallback; a partial answer keeps the lists it did not bring. */
export function applyRest(qc: QueryClient, r: { jobs?: Job[]; workers?: Worker[]; health?: Health }): void {
  if (r.jobs) {
    qc.setQueryData(jobKeys.recent(), sortJobs(r.jobs));
    for (const j of r.jobs) updateDetail(qc, j, true);
  }
  if (r.workers) qc.setQueryData(workerKeys.all, sortWorkers(r.workers));
  if (r.health) setHealth(qc, r.health);
}
