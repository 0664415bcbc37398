import { useCallback, useEffect, useId, useRef, useState, type FormEvent } from "react";
import { NavLink, Outlet } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { ApiError } from "../lib/api";
import { guessKind, setCredential, type CredentialKind } from "../lib/credential";
import { live, useLive, type ConnState } from "../lib/live";
import { navFor, ROLE_LABEL } from "../lib/roles";
import { useSession } from "../lib/session";
import { recentJobsQuery } from "../queries/jobs";
import { useNow } from "./ui";

const CONN_TEXT: Record<ConnState, { label: string; dot: string; help: string }> = {
  live: { label: "Live", dot: "bg-emerald-500", help: "Receiving events from the coordinator as they happen" },
  connecting: { label: "Connecting", dot: "bg-amber-400 animate-pulse", help: "Opening the live connection" },
  polling: {
    label: "Polling",
    dot: "bg-amber-500",
    help: "Live connection unavailable: refreshing over REST every few seconds",
  },
  offline: { label: "Offline", dot: "bg-rose-500", help: "The coordinator cannot be reached; retrying" },
};

function ConnectionBadge() {
  const v = useLive();
  const now = useNow(1000);
  const c = CONN_TEXT[v.conn];
  const retryIn = v.nextRetryAt && v.conn !== "live" ? Math.max(0, Math.ceil((v.nextRetryAt - now) / 1000)) : null;
  return (
    <div className="flex items-center gap-2">
      <span
        role="status"
        aria-label={`Connection: ${c.label}`}
        data-testid="connection-state"
        data-state={v.conn}
        title={`${c.help}${v.lastError && v.conn !== "live" ? ` (${v.lastError})` : ""}`}
        className="inline-flex items-center gap-2 rounded-full border border-slate-200 bg-white px-3 py-1 text-xs font-medium text-slate-700"
      >
        <span className={`h-2 w-2 rounded-full ${c.dot}`} aria-hidden />
        {c.label}
        {retryIn !== null && retryIn > 0 && (
          <span className="hidden text-slate-400 sm:inline">· retry in {retryIn} s</span>
        )}
      </span>
      {v.conn !== "live" && (
        <button
          type="button"
          className="hidden text-xs font-medium text-indigo-600 hover:text-indigo-500 sm:inline"
          onClick={() => live.reconnectNow()}
        >
          Reconnect
        </button>
      )}
    </div>
  );
}

function SignIn({ onDone }: { onDone: () => void }) {
  const [value, setValue] = useState("");
  const [kind, setKind] = useState<CredentialKind | null>(null);
  const inputId = useId();
  const inputRef = useRef<HTMLInputElement>(null);
  useEffect(() => inputRef.current?.focus(), []);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && onDone();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onDone]);
  const effective = kind ?? guessKind(value);
  const save = (e: FormEvent) => {
    e.preventDefault();
    if (!value.trim()) return;
    setCredential({ kind: effective, token: value });
    setValue("");
    onDone();
  };
  return (
    <div
      role="dialog"
      aria-label="Sign in"
      className="absolute right-0 z-30 mt-2 w-80 max-w-[calc(100vw-2rem)] rounded-xl border border-slate-200 bg-white p-4 shadow-lg"
    >
      <form onSubmit={save}>
        <label htmlFor={inputId} className="label">
          API key or admin token
        </label>
        <input
          id={inputId}
          ref={inputRef}
          type="password"
          autoComplete="off"
          className="input"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          placeholder="co_… or ADMIN_TOKEN"
        />
        <fieldset className="mt-3 flex gap-4 text-xs text-slate-700">
          <legend className="sr-only">Kind of credential</legend>
          {(["key", "admin"] as const).map((k) => (
            <label key={k} className="inline-flex items-center gap-1.5">
              <input type="radio" name="kind" checked={effective === k} onChange={() => setKind(k)} />
              {k === "key" ? "API key" : "Admin token"}
            </label>
          ))}
        </fieldset>
        <p className="mt-2 text-xs text-slate-500">
          Kept in this tab only (session storage); sent as{" "}
          {effective === "key" ? "Authorization: Bearer" : "X-Admin-Token"}.
        </p>
        <div className="mt-3 flex justify-end gap-2">
          <button type="button" className="btn-secondary px-3 py-1.5 text-xs" onClick={onDone}>
            Cancel
          </button>
          <button type="submit" className="btn-primary px-3 py-1.5 text-xs">
            Sign in
          </button>
        </div>
      </form>
    </div>
  );
}

function SessionControl() {
  const s = useSession();
  const v = useLive();
  const [open, setOpen] = useState(false);
  const close = useCallback(() => setOpen(false), []);
  // REST (/me) is the judge; the socket's verdict counts for the admin token (a coordinator that
  // does not know user keys on the socket leaves such a session read-only, which is not a rejection).
  const rejected =
    (s.error instanceof ApiError && s.error.status === 401) || (s.credential?.kind === "admin" && !!v.authError);
  return (
    <div className="relative">
      {s.credential ? (
        <div className="flex items-center gap-2">
          <span
            className={`max-w-[9rem] sm:max-w-[16rem] truncate rounded-full px-2.5 py-1 text-xs font-medium ${rejected ? "bg-rose-50 text-rose-700" : "bg-indigo-50 text-indigo-700"}`}
            data-testid="session-state"
            data-roles={s.roles.join(" ")}
            title={s.me ? `${s.me.user_id}${s.me.key ? ` · key ${s.me.key.name}` : ""}` : undefined}
          >
            {rejected
              ? "Rejected"
              : s.loading
                ? "Signing in…"
                : `${s.userId ?? "?"} · ${s.roles.map((r) => ROLE_LABEL[r]).join(", ") || "no rights"}`}
          </span>
          <button
            type="button"
            className="btn-secondary whitespace-nowrap px-2.5 py-1.5 text-xs"
            onClick={() => setCredential(null)}
          >
            Sign out
          </button>
        </div>
      ) : (
        <button
          type="button"
          className="btn-primary px-3 py-1.5 text-xs"
          onClick={() => setOpen((o) => !o)}
          aria-expanded={open}
        >
          Sign in
        </button>
      )}
      {open && !s.credential && <SignIn onDone={close} />}
    </div>
  );
}

export function ReadOnlyNotice() {
  const s = useSession();
  if (s.credential) {
    if (!(s.error instanceof ApiError && s.error.status === 401)) return null;
    return (
      <div role="alert" data-testid="rejected-notice" className="border-b border-rose-200 bg-rose-50">
        <div className="mx-auto max-w-7xl px-4 py-2 text-xs text-rose-900 sm:px-6 lg:px-8">
          <strong className="font-semibold">The coordinator rejected this credential</strong> (wrong, revoked, or its
          user is disabled). Sign out and sign in again.
        </div>
      </div>
    );
  }
  return (
    <div role="note" data-testid="read-only-notice" className="border-b border-amber-200 bg-amber-50">
      <div className="mx-auto max-w-7xl px-4 py-2 text-xs text-amber-900 sm:px-6 lg:px-8">
        <strong className="font-semibold">Read-only.</strong> Sign in with an API key to submit jobs, see your own jobs,
        balance and workers; with the admin token to manage users.
      </div>
    </div>
  );
}

function OfflineNotice() {
  const v = useLive();
  const loaded = useQuery(recentJobsQuery()).data !== undefined;
  if (v.conn !== "offline" || !loaded) return null;
  return (
    <div role="alert" data-testid="offline-notice" className="border-b border-rose-200 bg-rose-50">
      <div className="mx-auto max-w-7xl px-4 py-2 text-xs text-rose-900 sm:px-6 lg:px-8">
        <strong className="font-semibold">The coordinator cannot be reached.</strong> Showing the last known state;
        reconnecting by itself.
      </div>
    </div>
  );
}

export function Layout() {
  const s = useSession();
  return (
    <div className="min-h-screen">
      <header className="sticky top-0 z-20 border-b border-slate-200 bg-white/90 backdrop-blur">
        <div className="mx-auto flex max-w-7xl items-center justify-between gap-3 px-4 py-3 sm:px-6 lg:px-8">
          <NavLink to="/" className="flex items-center gap-2" aria-label="CacheOut home">
            <img src="/favicon.svg" alt="" className="h-7 w-7" />
            <span className="hidden text-base font-semibold sm:inline tracking-tight text-slate-900">CacheOut</span>
          </NavLink>
          <div className="flex items-center gap-3">
            <ConnectionBadge />
            <SessionControl />
          </div>
        </div>
        <nav aria-label="Main" className="mx-auto max-w-7xl overflow-x-auto px-2 sm:px-4 lg:px-6">
          <ul className="flex gap-1">
            {navFor(s.roles).map((n) => (
              <li key={n.to}>
                <NavLink
                  to={n.to}
                  end={n.end}
                  className={({ isActive }) =>
                    `block whitespace-nowrap border-b-2 px-3 py-2.5 text-sm font-medium ${
                      isActive
                        ? "border-indigo-600 text-indigo-700"
                        : "border-transparent text-slate-600 hover:text-slate-900"
                    }`
                  }
                >
                  {n.label}
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
      </header>
      <OfflineNotice />
      <ReadOnlyNotice />
      <main className="mx-auto max-w-7xl px-4 py-6 sm:px-6 lg:px-8">
        <Outlet />
      </main>
    </div>
  );
}
