import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef } from "react";
import { Link, useParams } from "react-router";
import { Artifacts } from "../components/Artifacts";
import { Card, EmptyState, ErrorState, Field, Meter, PageHeader, Spinner, StatusBadge, useNow } from "../components/ui";
import { ApiError, cancelJob } from "../lib/api";
import { formatCredits } from "../lib/credits";
import {
  formatDateTime,
  formatDuration,
  formatKb,
  formatMb,
  parseTime,
  pct,
  pendingReasonLabel,
  plural,
  wallTime,
} from "../lib/format";
import { useLive } from "../lib/live";
import { useSession } from "../lib/session";
import { useTimeline } from "../lib/timeline";
import { FINISHED_STATUSES, type Job } from "../lib/types";
import { verificationRows, verificationSummary } from "../lib/verification";
import { jobOutputQuery, jobQuery, storeJob } from "../queries/jobs";

function Timeline({ job, seen }: { job: Job; seen: { status: string; at: number }[] }) {
  const steps: { label: string; at: number | null; note?: string; tone: string }[] = [];
  steps.push({ label: "Submitted", at: parseTime(job.created_at), tone: "bg-slate-400" });
  const assigned = seen.find((s) => s.status === "assigned");
  if (assigned || job.assigned_worker)
    steps.push({
      label: "Assigned",
      at: assigned?.at ?? null,
      note: job.assigned_worker ?? undefined,
      tone: "bg-sky-400",
    });
  if (job.started_at || seen.some((s) => s.status === "running"))
    steps.push({
      label: "Started",
      at: parseTime(job.started_at) ?? seen.find((s) => s.status === "running")?.at ?? null,
      tone: "bg-indigo-500",
    });
  if (FINISHED_STATUSES.includes(job.status)) {
    const tone =
      job.status === "completed" ? "bg-emerald-500" : job.status === "failed" ? "bg-rose-500" : "bg-amber-500";
    const label = job.status[0].toUpperCase() + job.status.slice(1);
    const note = job.failure_reason
      ? `reason: ${job.failure_reason}`
      : job.exit_code !== null && job.exit_code !== undefined
        ? `exit code ${job.exit_code}`
        : undefined;
    steps.push({
      label,
      at: parseTime(job.completed_at) ?? seen.find((s) => s.status === job.status)?.at ?? null,
      note,
      tone,
    });
  }
  return (
    <ol
      className="relative ml-2 border-l border-slate-200"
      aria-label="Timeline"
      data-testid="job-timeline"
      // Every status this page's client saw for the job, in order, from the submit answer on
      // (recorded whether or not this page was on screen): tests read it instead of sampling.
      data-seen={seen.map((s) => s.status).join(" ")}
    >
      {steps.map((s) => (
        <li key={s.label} className="mb-5 ml-5 last:mb-0" data-step={s.label.toLowerCase()}>
          <span
            className={`absolute -left-[5px] mt-1.5 h-2.5 w-2.5 rounded-full ring-4 ring-white ${s.tone}`}
            aria-hidden
          />
          <div className="text-sm font-medium text-slate-900">{s.label}</div>
          <div className="text-xs text-slate-500">
            {s.at ? formatDateTime(new Date(s.at).toISOString()) : "time not reported"}
            {s.note && <span> · {s.note}</span>}
          </div>
        </li>
      ))}
      {(job.attempts ?? 0) > 1 && (
        <li className="ml-5 text-xs text-amber-700">
          Attempt {job.attempts} of {job.max_attempts ?? "?"} (earlier attempts lost their worker)
        </li>
      )}
    </ol>
  );
}

function Usage({ job, now }: { job: Job; now: number }) {
  const u = job.usage;
  const wall = wallTime(u?.wall_ms, job.status === "running", job.started_at, now);
  if (!u && job.status !== "running") {
    return (
      <EmptyState
        title={FINISHED_STATUSES.includes(job.status) ? "No usage was reported" : "Usage appears once the job runs"}
      />
    );
  }
  const cpuPct = u?.cpu_ms != null && wall ? pct(u.cpu_ms, wall * job.required_cores) : null;
  const memPct = u?.max_rss_kb != null ? pct(u.max_rss_kb / 1024, job.required_ram_mb) : null;
  return (
    <div className="space-y-4">
      <dl className="grid grid-cols-3 gap-4">
        <Field label="Wall time">{formatDuration(wall)}</Field>
        <Field label="CPU time">{formatDuration(u?.cpu_ms)}</Field>
        <Field label="Peak memory">{formatKb(u?.max_rss_kb)}</Field>
      </dl>
      {cpuPct !== null && (
        <div>
          <div className="mb-1 flex justify-between text-xs text-slate-600">
            <span>CPU of {plural(job.required_cores, "paid core")}</span>
            <span>{cpuPct.toFixed(0)}%</span>
          </div>
          <Meter value={cpuPct} label="CPU used of paid cores" />
        </div>
      )}
      {memPct !== null && (
        <div>
          <div className="mb-1 flex justify-between text-xs text-slate-600">
            <span>Memory of {formatMb(job.required_ram_mb)} paid</span>
            <span>{memPct.toFixed(0)}%</span>
          </div>
          <Meter value={memPct} label="Memory used of paid RAM" tone="emerald" />
        </div>
      )}
    </div>
  );
}

function Output({ job, allowed }: { job: Job; allowed: boolean }) {
  const v = useLive();
  const finished = FINISHED_STATUSES.includes(job.status);
  const pre = useRef<HTMLPreElement>(null);
  const q = useQuery({
    ...jobOutputQuery(job.job_id),
    enabled: allowed,
    // Live chunks arrive over the socket (admin sessions); poll otherwise while the job runs.
    refetchInterval: !finished && !(v.conn === "live" && v.admin) ? 2000 : false,
  });
  const out = q.data;
  // The job's output is stored before its final status: read it once more when the job ends
  // while the page is open, or a poll that ran just before the last chunks were stored would stay
  // the page's last word (a page opened on a finished job reads it once, on mount).
  const { refetch } = q;
  const wasFinished = useRef(finished);
  useEffect(() => {
    if (finished && !wasFinished.current && allowed) void refetch();
    wasFinished.current = finished;
  }, [finished, allowed, refetch]);
  useEffect(() => {
    const el = pre.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [out?.stdout.text, out?.stderr.text]);

  if (!allowed)
    return (
      <EmptyState title="Output is for the job's buyer">
        Sign in (top right) as its buyer, or as an admin, to see it.
      </EmptyState>
    );
  if (q.isError && !out) {
    const e = q.error as ApiError;
    return (
      <ErrorState
        title="Could not load the output"
        message={e.status === 401 || e.status === 403 ? "Your credential may not read this output." : e.message}
        onRetry={() => q.refetch()}
      />
    );
  }
  const stdout = out?.stdout.text ?? "";
  const stderr = out?.stderr.text ?? "";
  if (!out && q.isLoading) return <Spinner label="Loading output" />;
  if (!stdout && !stderr)
    return (
      <EmptyState title={finished ? "The job wrote no output" : "No output yet"}>
        {!finished && "Output streams here while the job runs."}
      </EmptyState>
    );
  return (
    <div className="space-y-3">
      <pre
        ref={pre}
        aria-label="Standard output"
        data-testid="job-stdout"
        className="max-h-96 overflow-auto whitespace-pre-wrap break-words rounded-lg bg-slate-900 p-4 font-mono text-xs leading-relaxed text-slate-100"
      >
        {stdout || <span className="text-slate-500">(no standard output)</span>}
      </pre>
      {stderr && (
        <pre
          aria-label="Standard error"
          className="max-h-64 overflow-auto whitespace-pre-wrap break-words rounded-lg bg-rose-950 p-4 font-mono text-xs leading-relaxed text-rose-100"
        >
          {stderr}
        </pre>
      )}
      {out?.truncated && <p className="text-xs text-amber-700">The output was truncated by the coordinator.</p>}
    </div>
  );
}

export function JobDetail() {
  const { id = "" } = useParams();
  const v = useLive();
  const session = useSession();
  const qc = useQueryClient();
  const now = useNow(1000);
  const seen = useTimeline(id);
  const q = useQuery({
    ...jobQuery(id),
    refetchInterval: (query) => {
      const d = query.state.data;
      if (v.conn === "live" || (d && FINISHED_STATUSES.includes(d.status))) return false;
      return 2000;
    },
    retry: (n, e) => (e as ApiError).status !== 404 && n < 2,
  });
  const cancel = useMutation({
    mutationFn: () => cancelJob(id),
    onSuccess: (job) => storeJob(qc, job),
  });

  const job = q.data;
  if (!job) {
    if (q.isError) {
      const e = q.error as ApiError;
      return (
        <>
          <PageHeader title="Job" />
          {e.status === 404 ? (
            <Card>
              <EmptyState title="No such job">
                <span className="font-mono text-xs">{id}</span> is not known to the coordinator.{" "}
                <Link to="/jobs" className="font-medium text-indigo-600">
                  Back to jobs
                </Link>
              </EmptyState>
            </Card>
          ) : (
            <ErrorState title="Could not load the job" message={e.message} onRetry={() => q.refetch()} />
          )}
        </>
      );
    }
    return <Spinner label="Loading job" />;
  }

  const admin = session.roles.includes("admin");
  // The buyer's own job (the coordinator shows buyer_id only to its buyer and to admins).
  const own = !!session.userId && job.buyer_id === session.userId && session.is("buyer");
  const cancellable = (admin || own) && !FINISHED_STATUSES.includes(job.status);
  const params = job.parameters && Object.keys(job.parameters).length ? JSON.stringify(job.parameters, null, 2) : null;

  return (
    <>
      <nav aria-label="Breadcrumb" className="mb-2 text-sm text-slate-500">
        <Link to="/jobs" className="hover:text-slate-700">
          Jobs
        </Link>{" "}
        <span aria-hidden>/</span> <span className="font-mono text-xs">{job.job_id}</span>
      </nav>
      <PageHeader
        title={job.title ?? job.job_id}
        subtitle={
          <span className="inline-flex flex-wrap items-center gap-2">
            <StatusBadge status={job.status} testId="job-status" />
            {job.failure_reason && <span className="text-rose-600">{job.failure_reason}</span>}
            {job.pending_reason && (
              <span
                className="text-amber-700"
                data-testid="job-pending-reason"
                data-code={job.pending_reason.code}
                title={job.pending_reason.code}
              >
                {pendingReasonLabel(job.pending_reason.code)}: {job.pending_reason.message}
              </span>
            )}
            <span>{job.buyer_id ? `submitted by ${job.buyer_id}` : "another buyer's job (public view)"}</span>
          </span>
        }
        actions={
          cancellable && (
            <button type="button" className="btn-danger" disabled={cancel.isPending} onClick={() => cancel.mutate()}>
              {cancel.isPending ? "Cancelling…" : "Cancel job"}
            </button>
          )
        }
      />
      {cancel.isError && (
        <div className="mb-4">
          <ErrorState title="Could not cancel the job" message={(cancel.error as Error).message} />
        </div>
      )}
      <div className="grid gap-6 lg:grid-cols-3">
        <div className="space-y-6 lg:col-span-2">
          <Card title="Details" labelledBy="details-title">
            <dl className="grid grid-cols-2 gap-x-6 gap-y-4 sm:grid-cols-3">
              <Field label="Job id">
                <span className="font-mono text-xs">{job.job_id}</span>
              </Field>
              <Field label={job.pricing && job.pricing !== "flat" ? "Held" : "Cost"}>
                {formatCredits(job.cost)} credits
              </Field>
              {job.charged !== undefined && (
                <Field label="Charged">
                  <span data-testid="job-charged">
                    {job.charged === null ? "not settled yet" : `${formatCredits(job.charged)} credits`}
                  </span>
                </Field>
              )}
              <Field label="Priority">{job.priority ?? "—"}</Field>
              <Field label="Cores">{job.required_cores}</Field>
              <Field label="RAM">{formatMb(job.required_ram_mb)}</Field>
              <Field label="Image">{job.image ?? "default"}</Field>
              <Field label="Worker">
                {job.assigned_worker ? (
                  <Link to="/workers" className="text-indigo-700 hover:text-indigo-500">
                    {job.assigned_worker}
                  </Link>
                ) : (
                  "—"
                )}
              </Field>
              <Field label="Attempts">
                {job.attempts ?? 0} / {job.max_attempts ?? "—"}
              </Field>
              <Field label="Timeout">{job.timeout_seconds ? formatDuration(job.timeout_seconds * 1000) : "—"}</Field>
              <Field label="Exit code">{job.exit_code ?? "—"}</Field>
              <div className="col-span-2 sm:col-span-3">
                <Field label="Command">
                  {job.command ? (
                    <code className="rounded bg-slate-100 px-1.5 py-0.5 font-mono text-xs">{job.command}</code>
                  ) : (
                    "not shown"
                  )}
                </Field>
              </div>
              {job.description && (
                <div className="col-span-2 sm:col-span-3">
                  <Field label="Description">{job.description}</Field>
                </div>
              )}
              {params && (
                <div className="col-span-2 sm:col-span-3">
                  <Field label="Parameters">
                    <pre className="overflow-x-auto rounded bg-slate-50 p-2 font-mono text-xs">{params}</pre>
                  </Field>
                </div>
              )}
            </dl>
          </Card>
          <Card
            title="Output"
            labelledBy="output-title"
            actions={
              !FINISHED_STATUSES.includes(job.status) && (admin || own) ? (
                <span className="text-xs text-slate-400">live</span>
              ) : undefined
            }
          >
            <Output job={job} allowed={admin || own} />
          </Card>
          {(job.replicas ?? 1) > 1 && job.verification && (
            <Card title="Verification" labelledBy="verification-title">
              <Verification job={job} />
            </Card>
          )}
          {(admin || own) && FINISHED_STATUSES.includes(job.status) && (
            <Card title="Artifacts" labelledBy="artifacts-title">
              <Artifacts jobId={job.job_id} truncated={job.artifacts_truncated} />
            </Card>
          )}
        </div>
        <div className="space-y-6">
          <Card title="Timeline" labelledBy="timeline-title">
            <Timeline job={job} seen={seen} />
          </Card>
          <Card title="Resource usage" labelledBy="usage-title">
            <Usage job={job} now={now} />
          </Card>
        </div>
      </div>
    </>
  );
}

/** A replicated job's replicas: who ran each, its result digest's prefix, whether it agrees. */
function Verification({ job }: { job: Job }) {
  const v = job.verification;
  if (!v) return null;
  const rows = verificationRows(v);
  return (
    <div data-testid="job-verification">
      <p className="mb-2 text-sm text-slate-600" data-testid="job-verification-state">
        {job.replicas} replicas: {verificationSummary(v, job.replicas ?? 1)}
      </p>
      {rows.length === 0 ? (
        <p className="text-sm text-slate-500">No replica has been claimed yet.</p>
      ) : (
        <table className="w-full text-left text-sm">
          <thead className="text-xs uppercase text-slate-500">
            <tr>
              <th scope="col">Worker</th>
              <th scope="col">Owner</th>
              <th scope="col">Digest</th>
              <th scope="col">Agrees</th>
              <th scope="col">Note</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.jobId} data-testid="job-verification-row">
                <td>{r.worker}</td>
                <td>{r.owner}</td>
                <td className="font-mono text-xs" title={r.jobId}>
                  {r.digest}
                </td>
                <td>{r.agrees}</td>
                <td className="text-slate-500">{r.note}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
