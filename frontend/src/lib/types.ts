// Shapes of the coordinator's REST objects (API.md) and of the cacheout.dashboard.v1 messages
// (proto/DASHBOARD.md). Fields the coordinator may omit are optional so that the dashboard keeps
// working against older or newer servers.

import type { Verification } from "./verification";

export const JOB_STATUSES = ["pending", "assigned", "running", "completed", "failed", "cancelled"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const FINISHED_STATUSES: readonly JobStatus[] = ["completed", "failed", "cancelled"];

export interface JobUsage {
  wall_ms?: number | null;
  cpu_ms?: number | null;
  max_rss_kb?: number | null;
}

/** Why a pending job is not placed yet (null unless pending). */
export interface PendingReason {
  code: string;
  message: string;
}

/** A job as the coordinator shows it: the public view (API.md) lacks title, command, buyer... */
export interface Job {
  job_id: string;
  title?: string;
  description?: string | null;
  status: JobStatus;
  failure_reason?: string | null;
  pending_reason?: PendingReason | null;
  cost?: number | string | null;
  required_cores: number;
  required_ram_mb: number;
  priority?: number;
  command?: string;
  parameters?: Record<string, unknown> | null;
  buyer_id?: string;
  assigned_worker?: string | null;
  image?: string;
  timeout_seconds?: number;
  attempts?: number;
  max_attempts?: number;
  exit_code?: number | null;
  usage?: JobUsage | null;
  created_at?: string | null;
  started_at?: string | null;
  completed_at?: string | null;
  code?: string;
  artifacts?: number; // once the attempt's artifacts are complete
  artifacts_truncated?: boolean;
  // Pricing (coordinator/README.md "Pricing, reputation and statements").
  pricing?: "flat" | "metered" | "market" | string;
  charged?: number | string | null;
  min_reputation?: number | string;
  price_per_core_second?: number | string;
  price_per_gb_second?: number | string;
  max_price_per_core_second?: number | string;
  max_price_per_gb_second?: number | string;
  // Replicas (coordinator/README.md "Replicas"): verification in the owner/admin view only.
  replicas?: number;
  verification?: Verification | null;
}

export type WorkerStatus = "idle" | "busy" | "offline";

export interface Worker {
  worker_id: string;
  owner_id?: string;
  cpu_cores: number;
  ram_mb: number;
  free_cores?: number;
  free_ram_mb?: number;
  status: WorkerStatus | string;
  connection?: "websocket" | "http" | string;
  running_jobs?: number | unknown[];
  last_heartbeat?: string | null;
  created_at?: string | null;
  updated_at?: string | null;
  /** The seller's market prices, credits per core-second and per GB-second. */
  price_per_core_second?: number | string;
  price_per_gb_second?: number | string;
  /** 0-1 (Beta(4,1) prior over the last 50 outcomes). */
  reputation?: number | string;
  owner_reputation?: number | string;
}

/** One UTC day of GET /api/v1/users/{id}/statement. */
export interface StatementDay {
  day: string;
  spent: number | string;
  earned: number | string;
  fees: number | string;
}

/** Pricing as the coordinator reports it: credits are JSON numbers with at most 6 decimals. */
export interface Pricing {
  cost_per_core: number | string;
  cost_per_100mb_ram: number | string;
  max_job_cores?: number | null;
  max_job_ram_mb?: number | null;
  /** PRICING: flat (the cost above), metered, market. */
  mode?: "flat" | "metered" | "market" | string;
  price_per_core_second?: number | string;
  price_per_gb_second?: number | string;
  platform_fee_percent?: number;
}

export interface Health {
  status: string;
  workers?: Partial<Record<"total" | "idle" | "busy" | "offline", number>>;
  jobs?: Partial<Record<JobStatus, number>>;
  total_credits?: number | string;
  active_users?: number;
  metrics?: {
    uptime_seconds?: number;
    database?: string;
    pricing?: Pricing;
    [key: string]: unknown;
  };
}

export interface CreditBalance {
  user_id: string;
  credits: number | string;
  held?: number | string;
}

export interface UserLimits {
  submit_per_second?: number | null;
  max_pending_jobs?: number | null;
  max_running_jobs?: number | null;
}

export interface User {
  user_id: string;
  username?: string | null;
  email?: string | null;
  is_admin: boolean;
  disabled: boolean;
  limits?: UserLimits | null;
  created_at?: string | null;
  credits?: number | string;
  held?: number | string;
}

export type Scope = "buy" | "sell" | "admin";

/** GET /api/v1/me: the user plus the key the request came with (absent for the admin token). */
export interface Me extends User {
  key?: { key_id: string; name: string; scopes: Scope[] } | null;
}

export interface ApiKey {
  key_id: string;
  name: string;
  scopes: Scope[];
  created_at?: string | null;
  last_used_at?: string | null;
  revoked_at?: string | null;
}
/** The answer to a key's creation: the only time its token is shown. */
export interface NewApiKey extends ApiKey {
  token: string;
}

export interface AuditRow {
  at: string;
  actor: string;
  action: string;
  target?: string | null;
  detail?: unknown;
}

export type LedgerRow = Record<string, unknown> & { kind?: string; amount?: number | string; created_at?: string };

export interface OutputChunk {
  job_id: string;
  stream: "stdout" | "stderr";
  /** Byte offset of this chunk in the job's stream. */
  offset: number;
  /** The chunk as text (invalid UTF-8 replaced by U+FFFD). */
  data: string;
  /** Raw byte length of the chunk; when absent, the UTF-8 length of `data`. */
  bytes?: number;
}

/* Messages of cacheout.dashboard.v1, server to client. */
export interface SnapshotMsg {
  type: "snapshot";
  seq: number;
  server_time?: string;
  session?: { admin?: boolean; user_id?: string | null };
  workers: Worker[];
  jobs: Job[];
  health: Health;
  pricing?: Pricing;
}
export interface JobUpdatedMsg {
  type: "job.updated";
  seq: number;
  job: Job;
}
export interface WorkerUpdatedMsg {
  type: "worker.updated";
  seq: number;
  worker: Worker;
}
export interface WorkerRemovedMsg {
  type: "worker.removed";
  seq: number;
  worker_id: string;
}
export interface CreditsUpdatedMsg {
  type: "credits.updated";
  seq: number;
  user_id: string;
  credits: number | string;
  held?: number | string;
}
export interface HealthUpdatedMsg {
  type: "health.updated";
  seq: number;
  health: Health;
}
export interface JobOutputMsg extends OutputChunk {
  type: "job.output";
  seq: number;
}
export type EventMsg =
  JobUpdatedMsg | WorkerUpdatedMsg | WorkerRemovedMsg | CreditsUpdatedMsg | HealthUpdatedMsg | JobOutputMsg;

export interface AuthResultMsg {
  type: "auth.result";
  ok: boolean;
  admin?: boolean;
  user_id?: string | null;
  error?: { code: string; message: string };
}
export interface ErrorMsg {
  type: "error";
  error: { code: string; message: string };
}
export type ServerMsg = SnapshotMsg | EventMsg | AuthResultMsg | ErrorMsg;
