import { useQuery } from "@tanstack/react-query";
import { useId, useMemo } from "react";
import { Link, useSearchParams } from "react-router";
import { Card, EmptyState, ErrorState, PageHeader, StatusBadge, Table, useNow } from "../components/ui";
import { formatCredits } from "../lib/credits";
import { formatMb, pendingReasonLabel, plural, timeAgo } from "../lib/format";
import { useSession } from "../lib/session";
import { JOB_STATUSES, type Job } from "../lib/types";
import { jobListQuery, recentJobsQuery } from "../queries/jobs";

export function Jobs() {
  const session = useSession();
  const liveQ = useQuery(recentJobsQuery());
  const liveJobs = useMemo(() => liveQ.data ?? [], [liveQ.data]);
  const now = useNow(5000);
  const [params, setParams] = useSearchParams();
  const status = params.get("status") ?? "";
  // A buyer (not an admin) sees its own jobs: the coordinator lists only those to its key.
  const ownOnly = !!session.userId && session.roles.includes("buyer") && !session.roles.includes("admin");
  const buyer = ownOnly ? (session.userId ?? "") : (params.get("buyer_id") ?? "");
  const q = params.get("q") ?? "";
  const statusId = useId();
  const buyerId = useId();
  const searchId = useId();

  const set = (key: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next, { replace: true });
  };

  // Server-side filters reach past the newest jobs the live view holds.
  const serverFiltered = status !== "" || buyer.trim() !== "";
  const filtered = useQuery({ ...jobListQuery({ status, buyer_id: buyer.trim() }), enabled: serverFiltered });

  const rows = useMemo(() => {
    let list: Job[];
    if (serverFiltered && filtered.data) {
      const liveById = new Map(liveJobs.map((j) => [j.job_id, j]));
      list = filtered.data.map((j) => {
        // The live copy may be the public view: it updates the status, the REST copy keeps the rest.
        const l = liveById.get(j.job_id);
        return l ? { ...j, ...l } : j;
      });
      // Jobs that reached this filter live since the last fetch.
      for (const j of liveJobs)
        if (
          (!status || j.status === status) &&
          (!buyer.trim() || j.buyer_id === buyer.trim()) &&
          !list.some((x) => x.job_id === j.job_id)
        )
          list.push(j);
      list = list.filter((j) => (!status || j.status === status) && (!buyer.trim() || j.buyer_id === buyer.trim()));
      list.sort((a, b) => ((a.created_at ?? "") < (b.created_at ?? "") ? 1 : -1));
    } else {
      list = liveJobs;
    }
    const needle = q.trim().toLowerCase();
    if (needle)
      list = list.filter((j) =>
        [j.job_id, j.title, j.buyer_id, j.assigned_worker, j.command].some((f) =>
          (f ?? "").toLowerCase().includes(needle),
        ),
      );
    return list;
  }, [serverFiltered, filtered.data, liveJobs, status, buyer, q]);

  const loading = liveQ.data === undefined || (serverFiltered && filtered.isLoading);

  return (
    <>
      <PageHeader
        title="Jobs"
        subtitle={
          ownOnly
            ? "Your jobs, updated live"
            : serverFiltered
              ? "Filtered on the coordinator"
              : "The newest jobs, updated live"
        }
        actions={
          session.is("buyer") && (
            <Link to="/submit" className="btn-primary">
              Submit a job
            </Link>
          )
        }
      />
      <Card bodyClassName="p-0">
        <div className="grid gap-3 border-b border-slate-100 p-4 sm:grid-cols-3">
          <div>
            <label htmlFor={searchId} className="label">
              Search
            </label>
            <input
              id={searchId}
              type="search"
              className="input"
              placeholder="Title, id, buyer, worker, command"
              value={q}
              onChange={(e) => set("q", e.target.value)}
            />
          </div>
          <div>
            <label htmlFor={statusId} className="label">
              Status
            </label>
            <select id={statusId} className="input" value={status} onChange={(e) => set("status", e.target.value)}>
              <option value="">All statuses</option>
              {JOB_STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </div>
          <div hidden={ownOnly}>
            <label htmlFor={buyerId} className="label">
              Buyer id
            </label>
            <input
              id={buyerId}
              className="input"
              placeholder="Any buyer"
              value={buyer}
              onChange={(e) => set("buyer_id", e.target.value)}
            />
          </div>
        </div>
        {serverFiltered && filtered.isError ? (
          <div className="p-4">
            <ErrorState
              title="Could not load jobs"
              message={(filtered.error as Error).message}
              onRetry={() => filtered.refetch()}
            />
          </div>
        ) : loading ? (
          <EmptyState title="Loading jobs…" />
        ) : rows.length === 0 ? (
          <EmptyState
            title={liveJobs.length === 0 && !serverFiltered && !q ? "No jobs yet" : "No jobs match these filters"}
          >
            {liveJobs.length === 0 && !serverFiltered && !q ? (
              <Link to="/submit" className="font-medium text-indigo-600 hover:text-indigo-500">
                Submit the first job
              </Link>
            ) : (
              "Try another status or clear the search."
            )}
          </EmptyState>
        ) : (
          <Table
            label="Jobs"
            columns={[
              { label: "Job" },
              { label: "Status" },
              { label: "Buyer", className: "hidden md:table-cell" },
              { label: "Worker", className: "hidden lg:table-cell" },
              { label: "Resources", className: "hidden sm:table-cell" },
              { label: "Cost", className: "hidden md:table-cell text-right" },
              { label: "Created", className: "hidden sm:table-cell" },
            ]}
          >
            {rows.map((j) => (
              <tr key={j.job_id} className="hover:bg-slate-50" data-testid="job-row" data-job-id={j.job_id}>
                <td className="td max-w-[16rem]">
                  <Link
                    to={`/jobs/${encodeURIComponent(j.job_id)}`}
                    className="block truncate font-medium text-indigo-700 hover:text-indigo-500"
                  >
                    {j.title ?? j.job_id}
                  </Link>
                  <div className="truncate font-mono text-xs text-slate-400">{j.job_id}</div>
                </td>
                <td className="td">
                  <StatusBadge status={j.status} />
                  {j.failure_reason && <div className="mt-1 text-xs text-rose-600">{j.failure_reason}</div>}
                  {j.pending_reason && (
                    <div
                      className="mt-1 max-w-xs text-xs text-amber-700"
                      title={j.pending_reason.message}
                      data-testid="pending-reason"
                      data-code={j.pending_reason.code}
                    >
                      <span className="font-medium">{pendingReasonLabel(j.pending_reason.code)}</span>
                      <span className="hidden break-words text-amber-600 md:block">{j.pending_reason.message}</span>
                    </div>
                  )}
                </td>
                <td className="td hidden md:table-cell">{j.buyer_id ?? "—"}</td>
                <td className="td hidden lg:table-cell">{j.assigned_worker ?? "—"}</td>
                <td className="td hidden whitespace-nowrap sm:table-cell">
                  {plural(j.required_cores, "core")} · {formatMb(j.required_ram_mb)}
                </td>
                <td className="td hidden text-right tabular-nums md:table-cell">{formatCredits(j.cost)}</td>
                <td className="td hidden whitespace-nowrap text-slate-500 sm:table-cell">
                  {timeAgo(j.created_at, now)}
                </td>
              </tr>
            ))}
          </Table>
        )}
      </Card>
      <p className="mt-3 text-xs text-slate-400">
        {rows.length} job{rows.length === 1 ? "" : "s"} shown
      </p>
    </>
  );
}
