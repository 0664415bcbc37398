import { useEffect, useId, useRef, useState, type FormEvent } from "react";
import { NavLink, Outlet } from "react-router";
import { live, useLive, type ConnState } from "../lib/live";
import { setToken, useToken } from "../lib/token";
import { useNow } from "./ui";

const NAV = [
  { to: "/", label: "Overview", end: true },
  { to: "/jobs", label: "Jobs", end: false },
  { to: "/submit", label: "Submit", end: false },
  { to: "/workers", label: "Workers", end: false },
  { to: "/credits", label: "Credits", end: false },
];

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
        {retryIn !== null && retryIn > 0 && <span className="hidden text-slate-400 sm:inline">· retry in {retryIn} s</span>}
      </span>
      {v.conn !== "live" && (
        <button type="button" className="hidden text-xs font-medium text-indigo-600 hover:text-indigo-500 sm:inline" onClick={() => live.reconnectNow()}>
          Reconnect
        </button>
      )}
    </div>
  );
}

function TokenControl() {
  const token = useToken();
  const v = useLive();
  const [open, setOpen] = useState(false);
  const [value, setValue] = useState("");
  const inputId = useId();
  const dialogRef = useRef<HTMLDivElement>(null);
  const inputRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    if (open) inputRef.current?.focus();
  }, [open]);
  useEffect(() => {
    if (!open) return;
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && setOpen(false);
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [open]);

  const save = (e: FormEvent) => {
    e.preventDefault();
    if (!value.trim()) return;
    setToken(value);
    setValue("");
    setOpen(false);
  };

  return (
    <div className="relative">
      {token ? (
        <div className="flex items-center gap-2">
          <span
            className={`hidden rounded-full px-2.5 py-1 text-xs font-medium sm:inline ${v.authError ? "bg-rose-50 text-rose-700" : "bg-indigo-50 text-indigo-700"}`}
            data-testid="admin-state"
          >
            {v.authError ? "Token rejected" : "Admin"}
          </span>
          <button type="button" className="btn-secondary px-2.5 py-1.5 text-xs" onClick={() => setToken("")}>
            Sign out
          </button>
        </div>
      ) : (
        <button type="button" className="btn-primary px-3 py-1.5 text-xs" onClick={() => setOpen((o) => !o)} aria-expanded={open}>
          Admin token
        </button>
      )}
      {open && (
        <div
          ref={dialogRef}
          role="dialog"
          aria-label="Enter admin token"
          className="absolute right-0 z-30 mt-2 w-80 max-w-[calc(100vw-2rem)] rounded-xl border border-slate-200 bg-white p-4 shadow-lg"
        >
          <form onSubmit={save}>
            <label htmlFor={inputId} className="label">
              Admin token
            </label>
            <input
              id={inputId}
              ref={inputRef}
              type="password"
              autoComplete="off"
              className="input"
              value={value}
              onChange={(e) => setValue(e.target.value)}
              placeholder="ADMIN_TOKEN of the coordinator"
            />
            <p className="mt-2 text-xs text-slate-500">Kept in this tab only (session storage) and sent as X-Admin-Token.</p>
            <div className="mt-3 flex justify-end gap-2">
              <button type="button" className="btn-secondary px-3 py-1.5 text-xs" onClick={() => setOpen(false)}>
                Cancel
              </button>
              <button type="submit" className="btn-primary px-3 py-1.5 text-xs">
                Save token
              </button>
            </div>
          </form>
        </div>
      )}
    </div>
  );
}

export function ReadOnlyNotice() {
  const token = useToken();
  if (token) return null;
  return (
    <div role="note" data-testid="read-only-notice" className="border-b border-amber-200 bg-amber-50">
      <div className="mx-auto max-w-7xl px-4 py-2 text-xs text-amber-900 sm:px-6 lg:px-8">
        <strong className="font-semibold">Read-only.</strong> Enter the admin token to submit and cancel jobs, see job
        output and credit ledgers.
      </div>
    </div>
  );
}

function OfflineNotice() {
  const v = useLive();
  if (v.conn !== "offline" || !v.data.loaded) return null;
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
  return (
    <div className="min-h-screen">
      <header className="sticky top-0 z-20 border-b border-slate-200 bg-white/90 backdrop-blur">
        <div className="mx-auto flex max-w-7xl items-center justify-between gap-3 px-4 py-3 sm:px-6 lg:px-8">
          <NavLink to="/" className="flex items-center gap-2" aria-label="CacheOut home">
            <img src="/favicon.svg" alt="" className="h-7 w-7" />
            <span className="text-base font-semibold tracking-tight text-slate-900">CacheOut</span>
          </NavLink>
          <div className="flex items-center gap-3">
            <ConnectionBadge />
            <TokenControl />
          </div>
        </div>
        <nav aria-label="Main" className="mx-auto max-w-7xl overflow-x-auto px-2 sm:px-4 lg:px-6">
          <ul className="flex gap-1">
            {NAV.map((n) => (
              <li key={n.to}>
                <NavLink
                  to={n.to}
                  end={n.end}
                  className={({ isActive }) =>
                    `block whitespace-nowrap border-b-2 px-3 py-2.5 text-sm font-medium ${
                      isActive ? "border-indigo-600 text-indigo-700" : "border-transparent text-slate-600 hover:text-slate-900"
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
