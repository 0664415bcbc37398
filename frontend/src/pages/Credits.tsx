import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { Card, EmptyState, ErrorState, PageHeader, Spinner, Stat } from "../components/ui";
import { ApiError, getCredits, getLedger, grantCredits } from "../lib/api";
import { formatCredits, formatMicro, toMicro } from "../lib/credits";
import { formatDateTime } from "../lib/format";
import { live, useLive } from "../lib/live";
import { useToken } from "../lib/token";
import { ID_RE } from "../lib/validate";

// Ledger rows are shown with whatever fields the coordinator gives; known ones come first, money last.
const PREFERRED = ["created_at", "kind", "job_id", "counterparty", "note", "amount", "held", "balance", "balance_after"];
const MONEY = new Set(["amount", "balance_after", "balance", "held", "credits"]);

function cell(key: string, value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (MONEY.has(key) && (typeof value === "number" || typeof value === "string")) return formatCredits(value);
  if (key.endsWith("_at") && typeof value === "string") return formatDateTime(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function Ledger({ user }: { user: string }) {
  const token = useToken();
  const q = useQuery({
    queryKey: ["ledger", user, token],
    queryFn: ({ signal }) => getLedger(user, signal),
    enabled: !!token,
    retry: false,
  });
  if (!token) return <EmptyState title="The ledger needs the admin token">Enter it with the Admin token button at the top right.</EmptyState>;
  if (q.isLoading) return <Spinner label="Loading ledger" />;
  if (q.isError) {
    const e = q.error as ApiError;
    if (e.status === 404) return <EmptyState title="No ledger for this user" />;
    return <ErrorState title="Could not load the ledger" message={e.status === 401 ? "The admin token was rejected." : e.message} onRetry={() => q.refetch()} />;
  }
  const rows = Array.isArray(q.data) ? q.data : [];
  if (rows.length === 0) return <EmptyState title="No ledger entries yet" />;
  const keys = Array.from(new Set(rows.flatMap((r) => Object.keys(r)))).filter((k) => k !== "user_id" && k !== "id");
  keys.sort((a, b) => {
    const ia = PREFERRED.indexOf(a);
    const ib = PREFERRED.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  });
  return (
    <div className="overflow-x-auto">
      <table className="min-w-full divide-y divide-slate-100" aria-label="Ledger">
        <thead className="bg-slate-50">
          <tr>
            {keys.map((k) => (
              <th key={k} scope="col" className={`th ${MONEY.has(k) ? "text-right" : ""}`}>
                {k.replace(/_/g, " ")}
              </th>
            ))}
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {rows.map((r, i) => (
            <tr key={i}>
              {keys.map((k) => {
                const micro = MONEY.has(k) ? toMicro(r[k] as number | string) : null;
                return (
                  <td
                    key={k}
                    className={`td whitespace-nowrap ${MONEY.has(k) ? "text-right tabular-nums" : ""} ${k === "amount" && micro !== null ? (micro < 0n ? "text-rose-700" : micro > 0n ? "text-emerald-700" : "") : ""}`}
                  >
                    {cell(k, r[k])}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Grant({ user }: { user: string }) {
  const qc = useQueryClient();
  const [amount, setAmount] = useState("");
  const [err, setErr] = useState<string | null>(null);
  const id = useId();
  const m = useMutation({
    mutationFn: () => grantCredits(user, amount.trim()),
    onSuccess: (bal) => {
      setAmount("");
      live.dispatch({ kind: "credits", userId: user, credits: bal.credits, held: bal.held });
      void qc.invalidateQueries({ queryKey: ["credits", user] });
      void qc.invalidateQueries({ queryKey: ["ledger", user] });
    },
    onError: (e: Error) => setErr(e.message),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setErr(null);
    const micro = toMicro(amount);
    if (micro === null || micro <= 0n || !/^\d+(\.\d{1,6})?$/.test(amount.trim())) {
      setErr("Enter a positive amount with at most 6 decimals");
      return;
    }
    m.mutate();
  };
  return (
    <form onSubmit={submit} className="flex flex-col gap-2 sm:flex-row sm:items-end" aria-label="Grant credits">
      <div className="flex-1">
        <label htmlFor={id} className="label">
          Grant credits
        </label>
        <input id={id} className="input" inputMode="decimal" placeholder="10.5" value={amount} onChange={(e) => setAmount(e.target.value)} aria-invalid={!!err} />
      </div>
      <button type="submit" className="btn-secondary" disabled={m.isPending}>
        {m.isPending ? "Granting…" : "Grant"}
      </button>
      {err && (
        <p role="alert" className="text-xs font-medium text-rose-600 sm:ml-2">
          {err}
        </p>
      )}
    </form>
  );
}

export function Credits() {
  const [params, setParams] = useSearchParams();
  const user = params.get("user") ?? "";
  const [draft, setDraft] = useState(user || "default-buyer");
  const [draftErr, setDraftErr] = useState<string | null>(null);
  const token = useToken();
  const v = useLive();
  const inputId = useId();
  const q = useQuery({
    queryKey: ["credits", user],
    queryFn: ({ signal }) => getCredits(user, signal),
    enabled: user !== "",
    retry: false,
    refetchInterval: v.conn === "live" ? false : 5000,
  });
  const liveBal = user ? v.data.credits[user] : undefined;
  const bal = liveBal ?? q.data;

  const lookUp = (e: FormEvent) => {
    e.preventDefault();
    const u = draft.trim();
    if (!ID_RE.test(u)) {
      setDraftErr("A user id is 1-64 letters, digits, '.', '_' or '-'");
      return;
    }
    setDraftErr(null);
    setParams({ user: u });
  };

  const available = bal ? toMicro(bal.credits) : null;
  const held = bal?.held !== undefined ? toMicro(bal.held) : null;

  return (
    <>
      <PageHeader title="Credits" subtitle="Balance, held credits and ledger of a buyer or seller" />
      <Card className="mb-6">
        <form onSubmit={lookUp} className="flex flex-col gap-2 sm:flex-row sm:items-end" aria-label="Look up user">
          <div className="flex-1">
            <label htmlFor={inputId} className="label">
              User id
            </label>
            <input
              id={inputId}
              className={`input ${draftErr ? "input-error" : ""}`}
              value={draft}
              onChange={(e) => setDraft(e.target.value)}
              aria-invalid={!!draftErr}
              spellCheck={false}
            />
            {draftErr && <p className="mt-1 text-xs font-medium text-rose-600">{draftErr}</p>}
          </div>
          <button type="submit" className="btn-primary">
            Look up
          </button>
        </form>
      </Card>
      {user === "" ? (
        <Card>
          <EmptyState title="Enter a user id">Buyers are created on their first job; sellers are the owners of agents.</EmptyState>
        </Card>
      ) : q.isLoading && !bal ? (
        <Spinner label="Loading balance" />
      ) : q.isError && !bal ? (
        (q.error as ApiError).status === 404 ? (
          <Card>
            <EmptyState title={`No user "${user}"`}>Users appear when they submit their first job or receive a grant.</EmptyState>
            {token && (
              <div className="border-t border-slate-100 px-5 py-4">
                <Grant user={user} />
              </div>
            )}
          </Card>
        ) : (
          <ErrorState title="Could not load the balance" message={(q.error as Error).message} onRetry={() => q.refetch()} />
        )
      ) : bal ? (
        <>
          <div className="grid gap-4 sm:grid-cols-3">
            <Stat label="Available" value={<span data-testid="credits-available">{formatCredits(bal.credits)}</span>} tone="emerald" />
            <Stat label="Held for running jobs" value={formatCredits(bal.held)} tone="amber" />
            <Stat
              label="Total"
              value={available !== null ? formatMicro(available + (held ?? 0n)) : "—"}
              hint={liveBal ? "updated live" : undefined}
            />
          </div>
          {token && (
            <Card className="mt-6">
              <Grant user={user} />
            </Card>
          )}
          <Card title="Ledger" labelledBy="ledger-title" className="mt-6" bodyClassName="p-0">
            <Ledger user={user} />
          </Card>
        </>
      ) : null}
    </>
  );
}
