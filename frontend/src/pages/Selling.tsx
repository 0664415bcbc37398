import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Link } from "react-router";
import { OnceToken } from "../components/KeyManager";
import { Card, EmptyState, OneFieldForm, PageHeader, Spinner, Stat, useNow } from "../components/ui";
import { agentCommand, agentUrl } from "../lib/agentCommand";
import { StatementChart } from "../components/StatementChart";
import { createKey, patchWorkerPrices } from "../lib/api";
import { formatCredits, formatMicro, toMicro } from "../lib/credits";
import { parsePrice } from "../lib/pricing";
import { useSession } from "../lib/session";
import type { NewApiKey, Worker } from "../lib/types";
import { ID_RE } from "../lib/validate";
import { creditsQuery } from "../queries/credits";
import { keyKeys } from "../queries/keys";
import { workerKeys } from "../queries/workers";
import { ledgerQuery } from "../queries/ledger";
import { workersQuery } from "../queries/workers";
import { Ledger } from "./Credits";
import { WorkerCard } from "./Workers";

function StartAgent({ userId }: { userId: string }) {
  const qc = useQueryClient();
  const [workerId, setWorkerId] = useState(`${userId}-agent-1`.slice(0, 64));
  const [created, setCreated] = useState<{ key: NewApiKey; workerId: string } | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const m = useMutation({
    mutationFn: (w: string) => createKey(userId, { name: `agent ${w}`, scopes: ["sell"] }),
    onSuccess: (key, w) => {
      setCreated({ key, workerId: w });
      void qc.invalidateQueries({ queryKey: keyKeys.user(userId) });
    },
    onError: (e: Error) => setErr(e.message),
  });
  const submit = () => {
    setErr(null);
    const w = workerId.trim();
    if (!ID_RE.test(w)) {
      setErr("A worker id is 1-64 letters, digits, '.', '_' or '-'");
      return;
    }
    m.mutate(w);
  };
  const cmd = created ? agentCommand(agentUrl(window.location), created.key.token, created.workerId) : null;
  return (
    <div className="space-y-4">
      <p className="text-sm text-slate-600">
        Each agent runs with a key of its own that may only sell (scope <code className="font-mono text-xs">sell</code>
        ). The worker id becomes yours when the agent first connects; nobody else can take it over.
      </p>
      <OneFieldForm
        name="Start an agent"
        label="Worker id"
        value={workerId}
        onChange={setWorkerId}
        onSubmit={submit}
        button={m.isPending ? "Creating key…" : "Create agent key"}
        busy={m.isPending}
        error={err}
        inputClass="font-mono"
      />
      {created && cmd && (
        <OnceToken created={created.key}>
          <p className="mt-3 font-medium">Start the agent on the machine that sells its capacity:</p>
          <div className="mt-2 flex items-start gap-2">
            <pre
              className="min-w-0 flex-1 whitespace-pre-wrap break-all rounded bg-slate-900 p-3 font-mono text-xs text-slate-100"
              data-testid="agent-command"
            >
              {cmd}
            </pre>
            <button
              type="button"
              className="btn-secondary px-2.5 py-1 text-xs"
              onClick={() => void navigator.clipboard?.writeText(cmd)}
            >
              Copy
            </button>
          </div>
          <p className="mt-2 text-xs">
            Optional: <code className="font-mono">AGENT_CORES</code> and <code className="font-mono">AGENT_RAM_MB</code>{" "}
            limit what it offers (default: the whole machine).
          </p>
        </OnceToken>
      )}
    </div>
  );
}

function PriceInput(props: { label: string; name: string; value: string; onChange: (v: string) => void }) {
  return (
    <label className="text-xs text-slate-600">
      {props.label}
      <input
        className="input mt-1 font-mono"
        name={props.name}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
      />
    </label>
  );
}

/** The seller sets its worker's market prices (PATCH /api/v1/workers/{id}). */
function WorkerPrices({ w }: { w: Worker }) {
  const qc = useQueryClient();
  const [core, setCore] = useState(String(w.price_per_core_second ?? "0"));
  const [gb, setGb] = useState(String(w.price_per_gb_second ?? "0"));
  const [err, setErr] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const m = useMutation({
    mutationFn: (body: { price_per_core_second: number; price_per_gb_second: number }) =>
      patchWorkerPrices(w.worker_id, body),
    onSuccess: (updated) => {
      setSaved(true);
      qc.setQueryData<Worker[]>(workerKeys.all, (prev) =>
        prev?.map((x) => (x.worker_id === updated.worker_id ? { ...x, ...updated } : x)),
      );
    },
    onError: (e: Error) => setErr(e.message),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setErr(null);
    setSaved(false);
    const c = parsePrice(core);
    const g = parsePrice(gb);
    if (c === null || g === null) {
      setErr("Prices are credits of at least 0 with at most 6 decimals");
      return;
    }
    m.mutate({ price_per_core_second: c, price_per_gb_second: g });
  };
  return (
    <form
      className="mt-4 grid grid-cols-[1fr_1fr_auto] items-end gap-2 border-t border-slate-100 pt-3"
      onSubmit={submit}
      aria-label={`Prices of ${w.worker_id}`}
    >
      <PriceInput label="Per core-second" name="price_per_core_second" value={core} onChange={setCore} />
      <PriceInput label="Per GB-second" name="price_per_gb_second" value={gb} onChange={setGb} />
      <button type="submit" className="btn-secondary px-3 py-2 text-xs" disabled={m.isPending}>
        {m.isPending ? "Saving…" : "Set prices"}
      </button>
      {err && <p className="col-span-3 text-xs font-medium text-rose-600">{err}</p>}
      {saved && !err && (
        <p className="col-span-3 text-xs text-emerald-700" data-testid="prices-saved">
          Prices saved.
        </p>
      )}
    </form>
  );
}

export function Selling() {
  const s = useSession();
  const userId = s.userId ?? "";
  const now = useNow(1000);
  const workersQ = useQuery(workersQuery());
  const bal = useQuery(creditsQuery(userId)).data;
  const ledger = useQuery(ledgerQuery(userId)).data;
  const mine = (workersQ.data ?? []).filter((w) => w.owner_id === userId);
  const payouts = (ledger ?? []).filter((r) => r.kind === "payout");
  const earned = payouts.reduce((sum, r) => sum + (toMicro(r.amount as number | string) ?? 0n), 0n);
  return (
    <>
      <PageHeader title="Selling" subtitle={`Your agents and what they earned (${userId})`} />
      <div className="grid grid-cols-2 gap-4 lg:grid-cols-3">
        <Stat
          label="Your agents online"
          value={<span data-testid="my-agents-online">{mine.filter((w) => w.status !== "offline").length}</span>}
          hint={`${mine.length} registered`}
          tone="emerald"
        />
        <Stat
          label="Earned"
          value={<span data-testid="earned">{ledger ? formatMicro(earned) : "—"}</span>}
          hint={`${payouts.length} payouts`}
          tone="indigo"
        />
        <Stat
          label="Balance"
          value={bal ? formatCredits(bal.credits) : "—"}
          hint={
            <Link to="/credits" className="text-indigo-600">
              ledger
            </Link>
          }
        />
      </div>
      <Card title="Start an agent" labelledBy="start-agent-title" className="mt-6">
        <StartAgent userId={userId} />
      </Card>
      <h2 className="mb-3 mt-8 text-sm font-semibold text-slate-800">Your workers</h2>
      {workersQ.data === undefined ? (
        <Spinner label="Loading workers" />
      ) : mine.length === 0 ? (
        <Card>
          <EmptyState title="No workers of yours yet">
            Create an agent key above and start the agent with the command it shows.
          </EmptyState>
        </Card>
      ) : (
        <ul className="grid gap-4 sm:grid-cols-2 xl:grid-cols-3" aria-label="Your workers">
          {mine.map((w) => (
            <WorkerCard key={w.worker_id} w={w} now={now}>
              <WorkerPrices w={w} />
            </WorkerCard>
          ))}
        </ul>
      )}
      <Card title="Earnings" labelledBy="earnings-title" className="mt-6" bodyClassName="p-0">
        <StatementChart user={userId} column="earned" label="Earnings" />
      </Card>
      <Card title="Payouts" labelledBy="payouts-title" className="mt-6" bodyClassName="p-0">
        <Ledger user={userId} kind="payout" />
      </Card>
    </>
  );
}
