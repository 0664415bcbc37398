// Jobs in the query cache: the live list (fed by src/lib/live.ts from the socket, or its REST
// polling while the socket is down), filtered lists, one job, one job's output. Keys never hold
// a credential: the cache is reset whenever the credential changes (src/lib/session.ts).
import { queryOptions, type QueryClient } from "@tanstack/react-query";
import { getJob, getJobOutput, getJobs } from "../lib/api";
import { mergeJob, restOutput, upsertJob, type JobOutput } from "../lib/reducer";
import type { Job } from "../lib/types";

export interface JobFilters {
  status?: string;
  buyer_id?: string;
}

export const jobKeys = {
  all: ["jobs"] as const,
  recent: () => ["jobs", "recent"] as const,
  lists: () => ["jobs", "list"] as const,
  list: (f: JobFilters) => ["jobs", "list", { status: f.status ?? "", buyer_id: f.buyer_id ?? "" }] as const,
  detail: (id: string) => ["jobs", "detail", id] as const,
  output: (id: string) => ["jobs", "output", id] as const,
};

/** The newest jobs, live. Written only by the live client: never fetched by a component. */
export const recentJobsQuery = () =>
  queryOptions({
    queryKey: jobKeys.recent(),
    queryFn: ({ signal }) => getJobs({ limit: "100" }, signal),
    enabled: false,
    staleTime: Infinity,
    gcTime: Infinity,
  });

/** Jobs filtered on the coordinator (reaches past the newest 100). */
export const jobListQuery = (f: JobFilters) =>
  queryOptions({
    queryKey: jobKeys.list(f),
    queryFn: ({ signal }) => {
      const p: Record<string, string> = { limit: "200" };
      if (f.status) p.status = f.status;
      if (f.buyer_id) p.buyer_id = f.buyer_id;
      return getJobs(p, signal);
    },
    refetchInterval: 5000,
  });

/** One job; a REST answer older than what the socket already brought does not replace it. */
export const jobQuery = (id: string) =>
  queryOptions({
    queryKey: jobKeys.detail(id),
    queryFn: async ({ signal, client }) =>
      mergeJob(client.getQueryData<Job>(jobKeys.detail(id)), await getJob(id, signal), true),
  });

/** A job's output (buyer or admin); live chunks held in the cache win when they are ahead. */
export const jobOutputQuery = (id: string) =>
  queryOptions({
    queryKey: jobKeys.output(id),
    queryFn: async ({ signal, client }): Promise<JobOutput> =>
      restOutput(client.getQueryData<JobOutput>(jobKeys.output(id)), await getJobOutput(id, signal)),
  });

/** Puts a job the client got from a REST answer (submit, cancel) where the pages read it. */
export function storeJob(qc: QueryClient, job: Job): void {
  qc.setQueryData<Job>(jobKeys.detail(job.job_id), (prev) => mergeJob(prev, job, true));
  qc.setQueryData<Job[]>(jobKeys.recent(), (prev) => upsertJob(prev, job, true));
}
