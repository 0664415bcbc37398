// The statuses the client has seen for each job, in order: recorded from every job the query
// cache receives (submit answers, socket events, REST answers), whether or not a page shows the
// job. The job page's timeline uses it for the steps the job object has no time for, and tests
// read it instead of sampling a badge that a fast job can pass by.
import type { QueryClient } from "@tanstack/react-query";
import { useSyncExternalStore } from "react";
import { recordTransition, type Transition } from "./reducer";
import type { Job } from "./types";

const NONE: Transition[] = [];

export class TimelineStore {
  private byJob = new Map<string, Transition[]>();
  private listeners = new Set<() => void>();

  note(job: Pick<Job, "job_id" | "status">, now: number): void {
    if (!job || typeof job.job_id !== "string" || typeof job.status !== "string") return;
    const prev = this.byJob.get(job.job_id);
    const next = recordTransition(prev, job.status, now);
    if (next === prev) return;
    this.byJob.set(job.job_id, next);
    for (const l of this.listeners) l();
  }

  get = (jobId: string): Transition[] => this.byJob.get(jobId) ?? NONE;

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  /** Records every job written under ["jobs", ...] in @qc from now on. */
  watch(qc: QueryClient, clock: () => number = Date.now): () => void {
    return qc.getQueryCache().subscribe((e) => {
      if (e.type !== "updated" || e.action.type !== "success") return;
      const key = e.query.queryKey;
      if (key[0] !== "jobs" || key[1] === "output") return;
      const data = e.query.state.data as Job | Job[] | undefined;
      const now = clock();
      if (Array.isArray(data)) for (const j of data) this.note(j, now);
      else if (data) this.note(data, now);
    });
  }
}

export const timelines = new TimelineStore();

export function useTimeline(jobId: string): Transition[] {
  return useSyncExternalStore(
    timelines.subscribe,
    () => timelines.get(jobId),
    () => timelines.get(jobId),
  );
}
