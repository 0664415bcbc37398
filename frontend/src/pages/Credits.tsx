import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useSearchParams } from "react-router";
import { StatementChart } from "../components/StatementChart";
import { Card, EmptyState, ErrorState, OneFieldForm, PageHeader, Spinner, Stat, Table } from "../components/ui";
import { ApiError, grantCredits } from "../lib/api";
import { formatCredits, formatMicro, toMicro } from "../lib/credits";
import { formatDateTime } from "../lib/format";
import { useLive } from "../lib/live";
import { useSession } from "../lib/session";
import { ID_RE } from "../lib/validate";
import { auditKeys } from "../queries/audit";
import { creditKeys, creditsQuery } from "../queries/credits";
import { ledgerKeys, ledgerQuery } from "../queries/ledger";
import { userKeys } from "../queries/users";

// Ledger rows are shown with whatever fields the coordinator gives; known ones come first, money last.
const PREFERRED = [
  "created_at",
  "kind",
  "job_id",
  "counterparty",
  "note",
  "amount",
  "held",
  "balance",
  "balance_after",
];
const PHONE = new Set(["created_at", "kind", "amount"]);
const MONEY = new Set(["amount", "balance_after", "balance", "held", "credits"]);

function cell(key: string, value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (MONEY.has(key) && (typeof value === "number" || typeof value === "string")) return formatCredits(value);
  if (key.endsWith("_at") && typeof value === "string") return formatDateTime(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function Ledger({ user, kind }: { user: string; kind?: string }) {
  const q = useQuery(ledgerQuery(user));
  if (q.isLoading) return <Spinner label="Loading ledger" />;
  if (q.isError) {
    const e = q.error as ApiError;
    if (e.status === 404) return <EmptyState title="No ledger for this user" />;
    return (
      <ErrorState
        title="Could not load the ledger"
        message={e.status === 401 || e.status === 403 ? "Only the user and admins may read this ledger." : e.message}
        onRetry={() => q.refetch()}
      />
    );
  }
  const rows = (Array.isArray(q.data) ? q.data : []).filter((r) => !kind || r.kind === kind);
  if (rows.length === 0) return <EmptyState title={kind ? `No ${kind} entries yet` : "No ledger entries yet"} />;
  const keys = Array.from(new Set(rows.flatMap((r) => Object.keys(r)))).filter((k) => k !== "user_id" && k !== "id");
  keys.sort((a, b) => {
    const ia = PREFERRED.indexOf(a);
    const ib = PREFERRED.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  });
  // On a phone: when, what and how much; the rest from the small breakpoint up.
  const colClass = (k: string) => `${MONEY.has(k) ? "text-right" : ""} ${PHONE.has(k) ? "" : "hidden sm:table-cell"}`;
  return (
    <Table label="Ledger" columns={keys.map((k) => ({ label: k.replace(/_/g, " "), className: colClass(k) }))}>
      {rows.map((r, i) => (
        <tr key={i}>
          {keys.map((k) => {
            const micro = MONEY.has(k) ? toMicro(r[k] as number | string) : null;
            const tone =
              k === "amount" && micro !== null
                ? micro < 0n
                  ? "text-rose-700"
                  : micro > 0n
                    ? "text-emerald-700"
                    : ""
                : "";
            return (
              <td
                key={k}
                className={`td whitespace-nowrap ${colClass(k)} ${MONEY.has(k) ? "tabular-nums" : ""} ${tone}`}
              >
                {cell(k, r[k])}
              </td>
            );
          })}
        </tr>
      ))}
    </Table>
  );
}

export function Grant({ user }: { user: string }) {
  const qc = useQueryClient();
  const [amount, setAmount] = useState("");
  const [err, setErr] = useState<string | null>(null);
  const m = useMutation({
    mutationFn: () => grantCredits(user, amount.trim()),
    onSuccess: (bal) => {
      setAmount("");
      qc.setQueryData(creditKeys.user(user), bal);
      void qc.invalidateQueries({ queryKey: ledgerKeys.user(user) });
      void qc.invalidateQueries({ queryKey: auditKeys.all });
      void qc.invalidateQueries({ queryKey: userKeys.all });
    },
    onError: (e: Error) => setErr(e.message),
  });
  const submit = () => {
    setErr(null);
    const micro = toMicro(amount);
    if (micro === null || micro <= 0n || !/^\d+(\.\d{1,6})?$/.test(amount.trim())) {
      setErr("Enter a positive amount with at most 6 decimals");
      return;
    }
    m.mutate();
  };
  return (
    <OneFieldForm
      name="Grant credits"
      label="Grant credits"
      value={amount}
      onChange={setAmount}
      onSubmit={submit}
      button={m.isPending ? "Granting…" : "Grant"}
      buttonClass="btn-secondary"
      busy={m.isPending}
      error={err}
      inputMode="decimal"
      placeholder="10.5"
    />
  );
}

export function Credits() {
  const [params, setParams] = useSearchParams();
  const session = useSession();
  // Admins look anyone up; everyone else sees their own balance and ledger.
  const admin = session.roles.includes("admin");
  const user = admin ? (params.get("user") ?? "") : (session.userId ?? "");
  const [draft, setDraft] = useState(user || "default-buyer");
  const [draftErr, setDraftErr] = useState<string | null>(null);
  const v = useLive();
  // credits.updated events from the socket keep it current; poll only without them.
  const q = useQuery({ ...creditsQuery(user), refetchInterval: v.conn === "live" ? false : 5000 });
  const bal = q.data;

  const lookUp = () => {
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
      <PageHeader
        title="Credits"
        subtitle={
          admin
            ? "Balance, held credits and ledger of a buyer or seller"
            : `Your balance, held credits and ledger (${user})`
        }
      />
      {admin && (
        <Card className="mb-6">
          <OneFieldForm
            name="Look up user"
            label="User id"
            value={draft}
            onChange={setDraft}
            onSubmit={lookUp}
            button="Look up"
            error={draftErr}
          />
        </Card>
      )}
      {user === "" ? (
        <Card>
          <EmptyState title="Enter a user id">
            Buyers are created on their first job; sellers are the owners of agents.
          </EmptyState>
        </Card>
      ) : q.isLoading && !bal ? (
        <Spinner label="Loading balance" />
      ) : q.isError && !bal ? (
        (q.error as ApiError).status === 404 ? (
          <Card>
            <EmptyState title={`No user "${user}"`}>
              Users appear when they submit their first job or receive a grant.
            </EmptyState>
            {admin && (
              <div className="border-t border-slate-100 px-5 py-4">
                <Grant user={user} />
              </div>
            )}
          </Card>
        ) : (
          <ErrorState
            title="Could not load the balance"
            message={(q.error as Error).message}
            onRetry={() => q.refetch()}
          />
        )
      ) : bal ? (
        <>
          <div className="grid gap-4 sm:grid-cols-3">
            <Stat
              label="Available"
              value={<span data-testid="credits-available">{formatCredits(bal.credits)}</span>}
              tone="emerald"
            />
            <Stat label="Held for running jobs" value={formatCredits(bal.held)} tone="amber" />
            <Stat
              label="Total"
              value={available !== null ? formatMicro(available + (held ?? 0n)) : "—"}
              hint={v.conn === "live" ? "updated live" : undefined}
            />
          </div>
          {admin && (
            <Card className="mt-6">
              <Grant user={user} />
            </Card>
          )}
          <Card title="Spending" labelledBy="spending-title" className="mt-6" bodyClassName="p-0">
            <StatementChart user={user} column="spent" label="Spending" />
          </Card>
          <Card title="Ledger" labelledBy="ledger-title" className="mt-6" bodyClassName="p-0">
            <Ledger user={user} />
          </Card>
        </>
      ) : null}
    </>
  );
}
