// REST client for the coordinator (API.md). Errors come back as ApiError with the server's
// machine code and, for validation errors, the field.
import { authHeaders, getCredential } from "./credential";
import type {
  ApiKey,
  AuditRow,
  CreditBalance,
  Health,
  Job,
  LedgerRow,
  Me,
  NewApiKey,
  StatementDay,
  User,
  UserLimits,
  Worker,
} from "./types";

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | null;

  constructor(status: number, code: string, message: string, field: string | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

interface Options {
  method?: "GET" | "POST" | "PATCH" | "DELETE";
  body?: unknown;
  signal?: AbortSignal;
}

export async function api<T>(path: string, opts: Options = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json", ...authHeaders(getCredential()) };
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers["Content-Type"] = "application/json";
  }
  let res: Response;
  try {
    res = await fetch(path, { method: opts.method ?? "GET", headers, body, signal: opts.signal });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "network", "The coordinator cannot be reached");
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let data: unknown = undefined;
  if (text !== "") {
    try {
      data = JSON.parse(text);
    } catch {
      if (res.ok) throw new ApiError(res.status, "bad_response", "The coordinator sent a response that is not JSON");
    }
  }
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string; field?: string } } | undefined)?.error;
    throw new ApiError(
      res.status,
      err?.code ?? `http_${res.status}`,
      err?.message ?? `${res.status} ${res.statusText || "error"}`,
      err?.field ?? null,
    );
  }
  return data as T;
}

export const getJobs = (params: Record<string, string> = {}, signal?: AbortSignal) => {
  const q = new URLSearchParams(params).toString();
  return api<Job[]>(`/api/v1/jobs${q ? `?${q}` : ""}`, { signal });
};
export const getJob = (id: string, signal?: AbortSignal) =>
  api<Job>(`/api/v1/jobs/${encodeURIComponent(id)}`, { signal });
export const getJobOutput = (id: string, signal?: AbortSignal) =>
  api<{ job_id: string; stdout: string; stderr: string; truncated: boolean }>(
    `/api/v1/jobs/${encodeURIComponent(id)}/output`,
    { signal },
  );
export const cancelJob = (id: string) =>
  api<Job>(`/api/v1/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST", body: {} });
export const getWorkers = (signal?: AbortSignal) => api<Worker[]>("/api/v1/workers", { signal });
export const getHealth = (signal?: AbortSignal) => api<Health>("/api/v1/health", { signal });
export const getCredits = (user: string, signal?: AbortSignal) =>
  api<CreditBalance>(`/api/v1/credits/${encodeURIComponent(user)}`, { signal });
export const getLedger = (user: string, signal?: AbortSignal) =>
  api<LedgerRow[]>(`/api/v1/credits/${encodeURIComponent(user)}/ledger`, { signal });
export const grantCredits = (user: string, amount: number | string) =>
  api<CreditBalance>(`/api/v1/credits/${encodeURIComponent(user)}/grant`, {
    method: "POST",
    body: { amount: typeof amount === "string" ? Number(amount) : amount },
  });
export const submitJob = (body: unknown) => api<Job>("/api/v1/submit", { method: "POST", body });
export const patchWorkerPrices = (id: string, body: { price_per_core_second?: number; price_per_gb_second?: number }) =>
  api<Worker>(`/api/v1/workers/${encodeURIComponent(id)}`, { method: "PATCH", body });
export const getStatement = (user: string, days: number, signal?: AbortSignal) =>
  api<StatementDay[]>(`/api/v1/users/${encodeURIComponent(user)}/statement?days=${days}`, { signal });

const u = (id: string) => `/api/v1/users/${encodeURIComponent(id)}`;
export const getMe = (signal?: AbortSignal) => api<Me>("/api/v1/me", { signal });
export const getUsers = (signal?: AbortSignal) => api<User[]>("/api/v1/users", { signal });
export const getUser = (id: string, signal?: AbortSignal) => api<User>(u(id), { signal });
export const createUser = (body: {
  user_id: string;
  username?: string;
  email?: string;
  is_admin?: boolean;
  credits?: number;
}) => api<User>("/api/v1/users", { method: "POST", body });
export const patchUser = (id: string, body: { is_admin?: boolean; disabled?: boolean; limits?: UserLimits }) =>
  api<User>(u(id), { method: "PATCH", body });
export const getKeys = (user: string, signal?: AbortSignal) => api<ApiKey[]>(`${u(user)}/keys`, { signal });
export const createKey = (user: string, body: { name: string; scopes: string[] }) =>
  api<NewApiKey>(`${u(user)}/keys`, { method: "POST", body });
export const revokeKey = (keyId: string) =>
  api<void>(`/api/v1/keys/${encodeURIComponent(keyId)}`, { method: "DELETE" });
export const getAudit = (signal?: AbortSignal) => api<AuditRow[]>("/api/v1/audit", { signal });
