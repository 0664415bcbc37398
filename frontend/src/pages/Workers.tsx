import { useQuery } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { Card, EmptyState, Meter, PageHeader, Spinner, StatusBadge, useNow } from "../components/ui";
import { formatAge, formatMb, parseTime, pct, plural, runningCount } from "../lib/format";
import { useLive } from "../lib/live";
import { formatCredits } from "../lib/credits";
import { formatReputation } from "../lib/pricing";
import type { Worker } from "../lib/types";
import { workersQuery } from "../queries/workers";

export function WorkerCard({ w, now, children }: { w: Worker; now: number; children?: ReactNode }) {
  const usedCores = Math.max(0, w.cpu_cores - (w.free_cores ?? w.cpu_cores));
  const usedRam = Math.max(0, w.ram_mb - (w.free_ram_mb ?? w.ram_mb));
  const hb = parseTime(w.last_heartbeat);
  const offline = w.status === "offline";
  const jobs = runningCount(w.running_jobs);
  return (
    <li
      className={`card p-5 ${offline ? "opacity-75" : ""}`}
      data-testid="worker-card"
      data-worker-id={w.worker_id}
      data-status={w.status}
      aria-label={`Worker ${w.worker_id}`}
    >
      <div className="flex items-start justify-between gap-3">
        <div className="min-w-0">
          <h2 className="truncate font-mono text-sm font-semibold text-slate-900">{w.worker_id}</h2>
          <p className="mt-0.5 truncate text-xs text-slate-500">
            {w.owner_id ? `owner ${w.owner_id}` : "owner not shown"}
            {w.connection && <> · {w.connection}</>}
          </p>
        </div>
        <StatusBadge status={w.status} testId="worker-status" />
      </div>
      <dl className="mt-4 grid grid-cols-3 gap-3 text-sm">
        <div>
          <dt className="text-xs text-slate-500">Capacity</dt>
          <dd className="font-medium text-slate-900">
            {plural(w.cpu_cores, "core")} · {formatMb(w.ram_mb)}
          </dd>
        </div>
        <div>
          <dt className="text-xs text-slate-500">Running jobs</dt>
          <dd className="font-medium tabular-nums text-slate-900">{jobs}</dd>
        </div>
        <div>
          <dt className="text-xs text-slate-500">Heartbeat</dt>
          <dd className={`font-medium tabular-nums ${offline ? "text-rose-600" : "text-slate-900"}`}>
            {hb === null ? "never" : `${formatAge(now - hb)} ago`}
          </dd>
        </div>
        <div>
          <dt className="text-xs text-slate-500">Reputation</dt>
          <dd className="font-medium tabular-nums text-slate-900" data-testid="worker-reputation">
            {formatReputation(w.reputation)}
            {w.owner_reputation !== undefined && (
              <span className="ml-1 text-xs font-normal text-slate-500">
                (owner {formatReputation(w.owner_reputation)})
              </span>
            )}
          </dd>
        </div>
        <div className="col-span-2">
          <dt className="text-xs text-slate-500">Price (credits)</dt>
          <dd className="font-medium tabular-nums text-slate-900" data-testid="worker-price">
            {formatCredits(w.price_per_core_second)} / core-s · {formatCredits(w.price_per_gb_second)} / GB-s
          </dd>
        </div>
      </dl>
      <div className="mt-4 space-y-3">
        <div>
          <div className="mb-1 flex justify-between text-xs text-slate-600">
            <span>CPU load</span>
            <span className="tabular-nums">
              {usedCores} / {w.cpu_cores} cores
            </span>
          </div>
          <Meter value={offline ? 0 : pct(usedCores, w.cpu_cores)} label={`CPU load of ${w.worker_id}`} />
        </div>
        <div>
          <div className="mb-1 flex justify-between text-xs text-slate-600">
            <span>Memory</span>
            <span className="tabular-nums">
              {formatMb(usedRam)} / {formatMb(w.ram_mb)}
            </span>
          </div>
          <Meter value={offline ? 0 : pct(usedRam, w.ram_mb)} label={`Memory load of ${w.worker_id}`} tone="emerald" />
        </div>
      </div>
      {children}
    </li>
  );
}

export function Workers() {
  const v = useLive();
  const now = useNow(1000);
  const q = useQuery(workersQuery());
  const loaded = q.data !== undefined;
  const workers = q.data ?? [];
  const online = workers.filter((w) => w.status !== "offline").length;
  return (
    <>
      <PageHeader
        title="Workers"
        subtitle={loaded ? `${online} online · ${workers.length - online} offline` : "Seller agents and their load"}
      />
      {!loaded ? (
        v.conn === "offline" ? (
          <Card>
            <EmptyState title="The coordinator cannot be reached">Retrying in the background.</EmptyState>
          </Card>
        ) : (
          <Spinner label="Loading workers" />
        )
      ) : workers.length === 0 ? (
        <Card>
          <EmptyState title="No workers registered">
            Sellers add capacity by running <code className="font-mono text-xs">cacheout-agent</code> pointed at this
            coordinator.
          </EmptyState>
        </Card>
      ) : (
        <ul className="grid gap-4 sm:grid-cols-2 xl:grid-cols-3" aria-label="Workers">
          {workers.map((w) => (
            <WorkerCard key={w.worker_id} w={w} now={now} />
          ))}
        </ul>
      )}
    </>
  );
}
