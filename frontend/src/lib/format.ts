// Display helpers: times, durations, sizes.

export function parseTime(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

/** "3 s", "4 min", "2 h", "5 d" (compact, for tables). */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h`;
  return `${Math.floor(h / 24)} d`;
}

export function timeAgo(iso: string | null | undefined, now: number): string {
  const t = parseTime(iso);
  if (t === null) return "—";
  return `${formatAge(now - t)} ago`;
}

/** Wall-clock date and time in the viewer's zone, e.g. "29 Nov, 14:05:12". */
export function formatDateTime(iso: string | null | undefined): string {
  const t = parseTime(iso);
  if (t === null) return "—";
  return new Date(t).toLocaleString(undefined, {
    day: "numeric",
    month: "short",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  const rs = Math.round(s % 60);
  if (m < 60) return `${m} min ${rs} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/**
 * A job's wall time: the reported usage, else (while it runs) the time since it started,
 * never below zero (the page's clock ticks once a second and may lag a start it just read).
 */
export function wallTime(
  usageWallMs: number | null | undefined,
  running: boolean,
  startedAt: string | null | undefined,
  now: number,
): number | null {
  if (usageWallMs !== null && usageWallMs !== undefined) return Math.max(0, usageWallMs);
  const started = parseTime(startedAt);
  return running && started !== null ? Math.max(0, now - started) : null;
}

export function formatMb(mb: number | null | undefined): string {
  if (mb === null || mb === undefined || !Number.isFinite(mb)) return "—";
  if (mb >= 1024) return `${(mb / 1024).toFixed(mb % 1024 === 0 ? 0 : 1)} GB`;
  return `${Math.round(mb)} MB`;
}

export function formatKb(kb: number | null | undefined): string {
  if (kb === null || kb === undefined || !Number.isFinite(kb)) return "—";
  if (kb < 1024) return `${kb} KB`;
  return formatMb(kb / 1024);
}

export function pct(part: number, whole: number): number {
  if (!whole || whole <= 0) return 0;
  return Math.max(0, Math.min(100, (part / whole) * 100));
}

export function runningCount(v: number | unknown[] | undefined): number {
  if (Array.isArray(v)) return v.length;
  return typeof v === "number" ? v : 0;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Short labels of the pending_reason codes (API.md "Scheduling guarantees"). */
const PENDING_REASON_LABELS: Record<string, string> = {
  no_agents: "No agent connected",
  no_agent_with_image: "No agent has its image",
  exceeds_largest_agent: "Larger than any agent",
  no_agent_with_reputation: "No agent with the reputation asked",
  no_agent_within_price: "No agent within the price asked",
  waiting_for_capacity: "Waiting for free capacity",
  running_limit: "Buyer at its running-jobs limit",
  waiting_for_distinct_owner: "Waiting for an agent of another owner",
};

/** The label of a pending_reason code; an unknown code is shown as it is. */
export function pendingReasonLabel(code: string): string {
  return PENDING_REASON_LABELS[code] ?? code;
}
