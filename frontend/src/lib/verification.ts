// The `verification` object of a replicated job (coordinator/README.md "Replicas"), shown to the
// job's buyer and admins on the job page.

/** One replica's result as the coordinator shows it (claimed replicas only). */
export interface VerificationResult {
  job_id: string;
  worker_id: string;
  owner_id: string;
  digest: string | null;
  agrees: boolean | null;
  outcome?: string | null;
  tiebreak?: boolean;
}

export interface Verification {
  state: "pending" | "agreed" | "unverified" | string;
  majority: number;
  results: VerificationResult[];
}

/** A row of the job page's replica table. */
export interface VerificationRow {
  jobId: string;
  worker: string;
  owner: string;
  digest: string; // the first 12 hex digits, "—" without a result
  agrees: "yes" | "no" | "—";
  note: string; // outcome and tie-break, "" when neither
}

export const DIGEST_PREFIX = 12;

/** The state's headline: "agreed (2 of 3 needed)", "pending", "unverified". */
export function verificationSummary(v: Verification, replicas: number): string {
  const need = `majority ${v.majority} of ${replicas}`;
  if (v.state === "agreed") return `agreed (${need})`;
  if (v.state === "unverified") return `unverified: no ${need} formed`;
  return `pending (${need} needed)`;
}

export function verificationRows(v: Verification | null | undefined): VerificationRow[] {
  if (!v || !Array.isArray(v.results)) return [];
  return v.results.map((r) => ({
    jobId: r.job_id,
    worker: r.worker_id,
    owner: r.owner_id,
    digest: r.digest ? r.digest.slice(0, DIGEST_PREFIX) : "—",
    agrees: r.agrees === true ? "yes" : r.agrees === false ? "no" : "—",
    note: [r.outcome ?? "", r.tiebreak ? "tie-break" : ""].filter(Boolean).join(", "),
  }));
}
