import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { createKey, revokeKey } from "../lib/api";
import { formatDateTime } from "../lib/format";
import type { NewApiKey, Scope } from "../lib/types";
import { auditKeys } from "../queries/audit";
import { keyKeys, keysQuery } from "../queries/keys";
import { EmptyState, ErrorState, Spinner, Table } from "./ui";

/** A token shown once, right after its key was made, with a copy button. */
export function OnceToken({ created, children }: { created: NewApiKey; children?: React.ReactNode }) {
  const [copied, setCopied] = useState(false);
  return (
    <div
      role="status"
      className="rounded-lg border border-emerald-200 bg-emerald-50 p-3 text-sm text-emerald-900"
      data-testid="new-key"
    >
      <p className="font-medium">Key “{created.name}” created. Copy its token now: it is not shown again.</p>
      <div className="mt-2 flex items-center gap-2">
        <code
          className="min-w-0 flex-1 break-all rounded bg-white px-2 py-1 font-mono text-xs"
          data-testid="new-key-token"
        >
          {created.token}
        </code>
        <button
          type="button"
          className="btn-secondary px-2.5 py-1 text-xs"
          onClick={() => void navigator.clipboard?.writeText(created.token).then(() => setCopied(true))}
        >
          {copied ? "Copied" : "Copy"}
        </button>
      </div>
      {children}
    </div>
  );
}

/** Lists, creates and revokes the API keys of @userId (self or admin). */
export function KeyManager({ userId, scopes: offered }: { userId: string; scopes: Scope[] }) {
  const qc = useQueryClient();
  const q = useQuery(keysQuery(userId));
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<Scope[]>(offered.filter((s) => s !== "admin"));
  const [created, setCreated] = useState<NewApiKey | null>(null);
  const nameId = useId();
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: keyKeys.user(userId) });
    void qc.invalidateQueries({ queryKey: auditKeys.all });
  };
  const create = useMutation({
    mutationFn: () => createKey(userId, { name: name.trim(), scopes }),
    onSuccess: (k) => {
      setCreated(k);
      setName("");
      refresh();
    },
  });
  const revoke = useMutation({ mutationFn: revokeKey, onSuccess: refresh });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (name.trim() && scopes.length) create.mutate();
  };
  const keys = (q.data ?? []).filter((k) => !k.revoked_at);
  return (
    <div className="space-y-4">
      <form onSubmit={submit} className="flex flex-col gap-3 sm:flex-row sm:items-end" aria-label="New API key">
        <div className="flex-1">
          <label htmlFor={nameId} className="label">
            New key name
          </label>
          <input
            id={nameId}
            className="input"
            value={name}
            onChange={(e) => setName(e.target.value)}
            placeholder="laptop"
            maxLength={64}
          />
        </div>
        <fieldset className="flex gap-3 text-sm text-slate-700">
          <legend className="sr-only">Scopes</legend>
          {offered.map((s) => (
            <label key={s} className="inline-flex items-center gap-1.5">
              <input
                type="checkbox"
                checked={scopes.includes(s)}
                onChange={(e) => setScopes((cur) => (e.target.checked ? [...cur, s] : cur.filter((x) => x !== s)))}
              />
              {s}
            </label>
          ))}
        </fieldset>
        <button type="submit" className="btn-primary" disabled={create.isPending || !name.trim() || !scopes.length}>
          {create.isPending ? "Creating…" : "Create key"}
        </button>
      </form>
      {create.isError && <ErrorState title="Could not create the key" message={create.error.message} />}
      {created && <OnceToken created={created} />}
      {q.isLoading ? (
        <Spinner label="Loading keys" />
      ) : q.isError ? (
        <ErrorState title="Could not load the keys" message={q.error.message} onRetry={() => void q.refetch()} />
      ) : keys.length === 0 ? (
        <EmptyState title="No keys yet" />
      ) : (
        <Table
          label="API keys"
          columns={[
            { label: "Name" },
            { label: "Scopes", className: "hidden sm:table-cell" },
            { label: "Created", className: "hidden sm:table-cell" },
            { label: "Last used", className: "hidden md:table-cell" },
            { label: <span className="sr-only">Actions</span> },
          ]}
        >
          {keys.map((k) => (
            <tr key={k.key_id} data-key-id={k.key_id} data-testid="key-row">
              <td className="td">
                <div className="font-medium text-slate-900">{k.name}</div>
                <div className="font-mono text-xs text-slate-400">{k.key_id}</div>
                <div className="text-xs text-slate-500 sm:hidden">{k.scopes.join(", ")}</div>
              </td>
              <td className="td hidden sm:table-cell">{k.scopes.join(", ")}</td>
              <td className="td hidden whitespace-nowrap sm:table-cell">{formatDateTime(k.created_at)}</td>
              <td className="td hidden whitespace-nowrap md:table-cell">
                {k.last_used_at ? formatDateTime(k.last_used_at) : "never"}
              </td>
              <td className="td text-right">
                <button
                  type="button"
                  className="btn-secondary px-2.5 py-1 text-xs text-rose-700"
                  disabled={revoke.isPending}
                  onClick={() => revoke.mutate(k.key_id)}
                >
                  Revoke
                </button>
              </td>
            </tr>
          ))}
        </Table>
      )}
      {revoke.isError && <ErrorState title="Could not revoke the key" message={revoke.error.message} />}
    </div>
  );
}
