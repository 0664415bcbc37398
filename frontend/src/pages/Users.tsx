import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { KeyManager } from "../components/KeyManager";
import { Card, EmptyState, ErrorState, FormError, PageHeader, Spinner, Table } from "../components/ui";
import { createUser, patchUser } from "../lib/api";
import { formatCredits } from "../lib/credits";
import type { User, UserLimits } from "../lib/types";
import { ID_RE, parseIntStrict } from "../lib/validate";
import { auditKeys } from "../queries/audit";
import { userKeys, usersQuery } from "../queries/users";
import { Grant } from "./Credits";

function useUserChanged() {
  const qc = useQueryClient();
  return () => {
    void qc.invalidateQueries({ queryKey: userKeys.all });
    void qc.invalidateQueries({ queryKey: auditKeys.all });
  };
}

function CreateUser() {
  const changed = useUserChanged();
  const [userId, setUserId] = useState("");
  const [username, setUsername] = useState("");
  const [isAdmin, setIsAdmin] = useState(false);
  const [err, setErr] = useState<string | null>(null);
  const idId = useId();
  const nameId = useId();
  const m = useMutation({
    mutationFn: () => createUser({ user_id: userId.trim(), username: username.trim() || undefined, is_admin: isAdmin }),
    onSuccess: () => {
      setUserId("");
      setUsername("");
      setIsAdmin(false);
      changed();
    },
    onError: (e: Error) => setErr(e.message),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setErr(null);
    if (!ID_RE.test(userId.trim())) {
      setErr("A user id is 1-64 letters, digits, '.', '_' or '-'");
      return;
    }
    m.mutate();
  };
  return (
    <form onSubmit={submit} className="grid gap-3 sm:grid-cols-[1fr_1fr_auto_auto] sm:items-end" aria-label="New user">
      <div>
        <label htmlFor={idId} className="label">
          New user id
        </label>
        <input
          id={idId}
          className="input"
          value={userId}
          onChange={(e) => setUserId(e.target.value)}
          spellCheck={false}
        />
      </div>
      <div>
        <label htmlFor={nameId} className="label">
          Name (optional)
        </label>
        <input id={nameId} className="input" value={username} onChange={(e) => setUsername(e.target.value)} />
      </div>
      <label className="inline-flex items-center gap-1.5 pb-2 text-sm text-slate-700">
        <input type="checkbox" checked={isAdmin} onChange={(e) => setIsAdmin(e.target.checked)} /> admin
      </label>
      <button type="submit" className="btn-primary" disabled={m.isPending}>
        {m.isPending ? "Creating…" : "Create user"}
      </button>
      <FormError message={err} className="sm:col-span-4" />
    </form>
  );
}

const LIMITS: { key: keyof UserLimits; label: string }[] = [
  { key: "submit_per_second", label: "Submits per second" },
  { key: "max_pending_jobs", label: "Max pending jobs" },
  { key: "max_running_jobs", label: "Max running jobs" },
];

function Limits({ user }: { user: User }) {
  const changed = useUserChanged();
  const [draft, setDraft] = useState<Record<string, string>>(() =>
    Object.fromEntries(LIMITS.map((l) => [l.key, user.limits?.[l.key] != null ? String(user.limits[l.key]) : ""])),
  );
  const [err, setErr] = useState<string | null>(null);
  const baseId = useId();
  const m = useMutation({
    mutationFn: (limits: UserLimits) => patchUser(user.user_id, { limits }),
    onSuccess: changed,
    onError: (e: Error) => setErr(e.message),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setErr(null);
    const limits: UserLimits = {};
    for (const l of LIMITS) {
      const t = (draft[l.key] ?? "").trim();
      if (t === "") {
        limits[l.key] = null;
        continue;
      }
      const n = parseIntStrict(t);
      if (n === null || n < 0) {
        setErr(`${l.label}: a whole number >= 0, or empty for the default`);
        return;
      }
      limits[l.key] = n;
    }
    m.mutate(limits);
  };
  return (
    <form onSubmit={submit} className="grid gap-3 sm:grid-cols-4 sm:items-end" aria-label={`Limits of ${user.user_id}`}>
      {LIMITS.map((l) => (
        <div key={l.key}>
          <label htmlFor={`${baseId}-${l.key}`} className="label">
            {l.label}
          </label>
          <input
            id={`${baseId}-${l.key}`}
            className="input"
            inputMode="numeric"
            placeholder="default"
            value={draft[l.key] ?? ""}
            onChange={(e) => setDraft((d) => ({ ...d, [l.key]: e.target.value }))}
          />
        </div>
      ))}
      <button type="submit" className="btn-secondary" disabled={m.isPending}>
        {m.isPending ? "Saving…" : "Save limits"}
      </button>
      <FormError message={err} className="sm:col-span-4" />
    </form>
  );
}

function ManageUser({ user }: { user: User }) {
  const changed = useUserChanged();
  const toggle = useMutation({
    mutationFn: () => patchUser(user.user_id, { disabled: !user.disabled }),
    onSuccess: changed,
  });
  return (
    <Card
      title={<span>Manage {user.user_id}</span>}
      labelledBy="manage-title"
      className="mt-6"
      actions={
        <button
          type="button"
          className={user.disabled ? "btn-secondary" : "btn-danger"}
          disabled={toggle.isPending || user.user_id === "admin"}
          onClick={() => toggle.mutate()}
        >
          {user.disabled ? "Enable user" : "Disable user"}
        </button>
      }
    >
      <div className="space-y-6">
        {toggle.isError && <ErrorState title="Could not change the user" message={toggle.error.message} />}
        <Limits key={JSON.stringify(user.limits ?? {})} user={user} />
        <Grant user={user.user_id} />
        <div>
          <h3 className="mb-2 text-sm font-semibold text-slate-800">Keys</h3>
          <KeyManager userId={user.user_id} scopes={user.is_admin ? ["buy", "sell", "admin"] : ["buy", "sell"]} />
        </div>
      </div>
    </Card>
  );
}

export function Users() {
  const q = useQuery(usersQuery());
  const [selected, setSelected] = useState<string | null>(null);
  const users = q.data ?? [];
  const current = users.find((u) => u.user_id === selected);
  return (
    <>
      <PageHeader
        title="Users"
        subtitle="Buyers and sellers: create, disable, set limits, grant credits, manage keys"
      />
      <Card className="mb-6">
        <CreateUser />
      </Card>
      <Card bodyClassName="p-0">
        {q.isLoading ? (
          <Spinner label="Loading users" />
        ) : q.isError ? (
          <div className="p-4">
            <ErrorState title="Could not load the users" message={q.error.message} onRetry={() => void q.refetch()} />
          </div>
        ) : users.length === 0 ? (
          <EmptyState title="No users yet" />
        ) : (
          <Table
            label="Users"
            columns={[
              { label: "User" },
              { label: "Status" },
              { label: "Credits", className: "hidden text-right sm:table-cell" },
              { label: "Limits", className: "hidden md:table-cell" },
              { label: <span className="sr-only">Actions</span> },
            ]}
          >
            {users.map((u) => (
              <tr
                key={u.user_id}
                data-testid="user-row"
                data-user-id={u.user_id}
                data-disabled={u.disabled ? "true" : "false"}
              >
                <td className="td">
                  <div className="font-medium text-slate-900">{u.user_id}</div>
                  {u.username && <div className="text-xs text-slate-500">{u.username}</div>}
                </td>
                <td className="td whitespace-nowrap text-xs">
                  {u.is_admin && <span className="mr-1 rounded bg-indigo-50 px-1.5 py-0.5 text-indigo-700">admin</span>}
                  {u.disabled ? (
                    <span className="rounded bg-rose-50 px-1.5 py-0.5 text-rose-700">disabled</span>
                  ) : (
                    <span className="text-emerald-700">active</span>
                  )}
                </td>
                <td className="td hidden text-right tabular-nums sm:table-cell">{formatCredits(u.credits)}</td>
                <td className="td hidden text-xs text-slate-500 md:table-cell">
                  {LIMITS.map((l) =>
                    // max_running_jobs 0 is "no cap" (API.md)
                    u.limits?.[l.key] != null && !(l.key === "max_running_jobs" && u.limits[l.key] === 0)
                      ? `${l.label.toLowerCase()}: ${u.limits[l.key]}`
                      : null,
                  )
                    .filter(Boolean)
                    .join(" · ") || "defaults"}
                </td>
                <td className="td text-right">
                  <button
                    type="button"
                    className="btn-secondary px-2.5 py-1 text-xs"
                    onClick={() => setSelected(u.user_id)}
                    aria-label={`Manage ${u.user_id}`}
                  >
                    Manage
                  </button>
                </td>
              </tr>
            ))}
          </Table>
        )}
      </Card>
      {current && <ManageUser key={current.user_id} user={current} />}
    </>
  );
}
