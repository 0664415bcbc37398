import { useQuery } from "@tanstack/react-query";
import { Link } from "react-router";
import { LiveChart } from "../components/LiveChart";
import {
  Card,
  EmptyState,
  Meter,
  PageHeader,
  Spinner,
  Stat,
  STATUS_COLOR,
  StatusBadge,
  useNow,
} from "../components/ui";
import { formatCredits } from "../lib/credits";
import { formatMb, pct, runningCount, timeAgo } from "../lib/format";
import { ratePerMinute, useLive } from "../lib/live";
import { JOB_STATUSES } from "../lib/types";
import { healthQuery } from "../queries/health";
import { recentJobsQuery } from "../queries/jobs";
import { workersQuery } from "../queries/workers";

export function Overview() {
  const v = useLive();
  const now = useNow(5000);
  const health = useQuery(healthQuery()).data ?? null;
  const workersQ = useQuery(workersQuery());
  const jobsQ = useQuery(recentJobsQuery());
  const workers = workersQ.data ?? [];
  const jobs = jobsQ.data ?? [];

  if (workersQ.data === undefined && jobsQ.data === undefined && !health) {
    return (
      <>
        <PageHeader title="Overview" />
        {v.conn === "offline" ? (
          <Card>
            <EmptyState title="The coordinator cannot be reached">
              Retrying in the background.{" "}
              {v.lastError && <span className="block text-xs text-slate-400">{v.lastError}</span>}
            </EmptyState>
          </Card>
        ) : (
          <Spinner label="Loading cluster state" />
        )}
      </>
    );
  }

  const online = workers.filter((w) => w.status !== "offline");
  const totalCores = online.reduce((s, w) => s + (w.cpu_cores || 0), 0);
  const totalRam = online.reduce((s, w) => s + (w.ram_mb || 0), 0);
  const usedCores = online.reduce(
    (s, w) => s + Math.max(0, (w.cpu_cores || 0) - (w.free_cores ?? w.cpu_cores ?? 0)),
    0,
  );
  const usedRam = online.reduce((s, w) => s + Math.max(0, (w.ram_mb || 0) - (w.free_ram_mb ?? w.ram_mb ?? 0)), 0);
  const counts = health?.jobs ?? {};
  const totalJobs = JOB_STATUSES.reduce((s, k) => s + (counts[k] ?? 0), 0);
  const rates = ratePerMinute(v.samples);
  const lastRate = rates.length ? rates[rates.length - 1].rate : 0;
  const unhealthy = health && health.status !== "healthy";
  // The chart spans the samples collected since the page opened: 2 to 15 minutes.
  const span = v.samples.length ? now - v.samples[0].t : 0;
  const chartWindow = Math.min(15, Math.max(2, Math.ceil(span / 60000))) * 60000;

  return (
    <>
      <PageHeader
        title="Overview"
        subtitle={
          health?.metrics?.uptime_seconds !== undefined
            ? `Coordinator up ${Math.floor((health.metrics.uptime_seconds ?? 0) / 3600)} h ${Math.floor(((health.metrics.uptime_seconds ?? 0) % 3600) / 60)} min · database ${health.metrics?.database ?? "unknown"}`
            : "Cluster capacity, jobs and credits"
        }
      />
      {unhealthy && (
        <div role="alert" className="mb-6 rounded-xl border border-rose-200 bg-rose-50 px-5 py-3 text-sm text-rose-800">
          The coordinator reports <strong>{health?.status}</strong>: its database may be unreachable.
        </div>
      )}
      <div className="grid grid-cols-2 gap-4 lg:grid-cols-4">
        <Stat
          label="Agents online"
          value={<span data-testid="agents-online">{online.length}</span>}
          hint={`${workers.length - online.length} offline · ${workers.length} registered`}
          tone="emerald"
        />
        <Stat
          label="Running jobs"
          value={counts.running ?? 0}
          hint={`${(counts.pending ?? 0) + (counts.assigned ?? 0)} waiting`}
          tone="indigo"
        />
        <Stat label="Jobs per minute" value={lastRate.toFixed(1)} hint="completed or failed, last minute" />
        <Stat
          label="Credits in the system"
          value={formatCredits(health?.total_credits)}
          hint={health?.active_users !== undefined ? `${health.active_users} active users` : undefined}
        />
      </div>

      <div className="mt-6 grid gap-6 lg:grid-cols-3">
        <Card title="Cluster capacity" labelledBy="cap-title" className="lg:col-span-1">
          {online.length === 0 ? (
            <EmptyState title="No agents online">
              Start <code className="font-mono text-xs">cacheout-agent</code> on a seller machine to add capacity.
            </EmptyState>
          ) : (
            <div className="space-y-5">
              <div>
                <div className="mb-1.5 flex justify-between text-sm">
                  <span className="text-slate-600">CPU cores</span>
                  <span className="font-medium tabular-nums text-slate-900">
                    {usedCores} / {totalCores} in use
                  </span>
                </div>
                <Meter value={pct(usedCores, totalCores)} label="CPU utilisation" />
              </div>
              <div>
                <div className="mb-1.5 flex justify-between text-sm">
                  <span className="text-slate-600">Memory</span>
                  <span className="font-medium tabular-nums text-slate-900">
                    {formatMb(usedRam)} / {formatMb(totalRam)}
                  </span>
                </div>
                <Meter value={pct(usedRam, totalRam)} label="Memory utilisation" tone="emerald" />
              </div>
              <p className="text-xs text-slate-500">
                Utilisation {Math.round(pct(usedCores, totalCores))}% of cores across {online.length} online agent
                {online.length === 1 ? "" : "s"}.
              </p>
            </div>
          )}
        </Card>

        <Card title="Jobs by status" labelledBy="jobs-status-title" className="lg:col-span-2">
          {totalJobs === 0 ? (
            <EmptyState title="No jobs yet">
              <Link to="/submit" className="font-medium text-indigo-600 hover:text-indigo-500">
                Submit the first job
              </Link>
            </EmptyState>
          ) : (
            <>
              <div className="flex h-3 w-full overflow-hidden rounded-full bg-slate-100" aria-hidden>
                {JOB_STATUSES.map((s) =>
                  counts[s] ? (
                    <div key={s} style={{ width: `${pct(counts[s] ?? 0, totalJobs)}%`, background: STATUS_COLOR[s] }} />
                  ) : null,
                )}
              </div>
              <dl className="mt-4 grid grid-cols-2 gap-3 sm:grid-cols-3">
                {JOB_STATUSES.map((s) => (
                  <div
                    key={s}
                    className="flex items-center justify-between rounded-lg border border-slate-100 px-3 py-2"
                  >
                    <dt className="flex items-center gap-2 text-sm text-slate-600">
                      <span className="h-2.5 w-2.5 rounded-full" style={{ background: STATUS_COLOR[s] }} aria-hidden />
                      {s}
                    </dt>
                    <dd className="text-sm font-semibold tabular-nums text-slate-900" data-testid={`count-${s}`}>
                      {counts[s] ?? 0}
                    </dd>
                  </div>
                ))}
              </dl>
            </>
          )}
        </Card>
      </div>

      <div className="mt-6 grid gap-6 lg:grid-cols-3">
        <Card title="Throughput" labelledBy="chart-title" className="lg:col-span-2">
          <LiveChart
            points={rates.map((r) => ({ t: r.t, a: r.rate, b: r.running }))}
            labelA="Jobs finished per minute"
            labelB="Running jobs"
            windowMs={chartWindow}
            now={now}
          />
        </Card>
        <Card
          title="Recent jobs"
          labelledBy="recent-title"
          bodyClassName="p-0"
          actions={
            <Link to="/jobs" className="text-xs font-medium text-indigo-600 hover:text-indigo-500">
              All jobs
            </Link>
          }
        >
          {jobs.length === 0 ? (
            <EmptyState title="No jobs yet" />
          ) : (
            <ul className="divide-y divide-slate-100">
              {jobs.slice(0, 6).map((j) => (
                <li key={j.job_id}>
                  <Link
                    to={`/jobs/${encodeURIComponent(j.job_id)}`}
                    className="flex items-center justify-between gap-3 px-5 py-3 hover:bg-slate-50"
                  >
                    <div className="min-w-0">
                      <div className="truncate text-sm font-medium text-slate-900">{j.title ?? j.job_id}</div>
                      <div className="truncate text-xs text-slate-500">
                        {j.buyer_id ?? "another buyer"} · {timeAgo(j.created_at, now)}
                      </div>
                    </div>
                    <StatusBadge status={j.status} />
                  </Link>
                </li>
              ))}
            </ul>
          )}
        </Card>
      </div>
      <p className="mt-6 text-xs text-slate-400">
        {workers.reduce((s, w) => s + runningCount(w.running_jobs), 0)} jobs on agents ·{" "}
        {v.conn === "live" ? "updated live" : "refreshed every few seconds"}
      </p>
    </>
  );
}
