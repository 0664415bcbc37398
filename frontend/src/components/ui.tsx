import { useEffect, useId, useState, type ReactNode } from "react";
import type { JobStatus } from "../lib/types";

export function useNow(intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(t);
  }, [intervalMs]);
  return now;
}

export function PageHeader({ title, subtitle, actions }: { title: string; subtitle?: ReactNode; actions?: ReactNode }) {
  return (
    <div className="mb-6 flex flex-col gap-3 sm:flex-row sm:items-end sm:justify-between">
      <div className="min-w-0">
        <h1 className="text-2xl font-semibold tracking-tight text-slate-900">{title}</h1>
        {subtitle && <p className="mt-1 text-sm text-slate-500">{subtitle}</p>}
      </div>
      {actions && <div className="flex flex-wrap gap-2">{actions}</div>}
    </div>
  );
}

export function Card({
  title,
  actions,
  children,
  className = "",
  bodyClassName = "p-5",
  labelledBy,
}: {
  title?: ReactNode;
  actions?: ReactNode;
  children: ReactNode;
  className?: string;
  bodyClassName?: string;
  labelledBy?: string;
}) {
  return (
    <section className={`card ${className}`} aria-labelledby={labelledBy}>
      {(title || actions) && (
        <div className="flex items-center justify-between gap-3 border-b border-slate-100 px-5 py-3.5">
          {title && (
            <h2 id={labelledBy} className="text-sm font-semibold text-slate-800">
              {title}
            </h2>
          )}
          {actions}
        </div>
      )}
      <div className={bodyClassName}>{children}</div>
    </section>
  );
}

export function Stat({
  label,
  value,
  hint,
  tone = "slate",
}: {
  label: string;
  value: ReactNode;
  hint?: ReactNode;
  tone?: "slate" | "indigo" | "emerald" | "amber" | "rose";
}) {
  const tones: Record<string, string> = {
    slate: "text-slate-900",
    indigo: "text-indigo-700",
    emerald: "text-emerald-700",
    amber: "text-amber-700",
    rose: "text-rose-700",
  };
  return (
    <div className="card p-5" role="group" aria-label={label}>
      <div className="text-sm font-medium text-slate-500">{label}</div>
      <div className={`mt-2 text-2xl font-semibold tabular-nums ${tones[tone]}`}>{value}</div>
      {hint && <div className="mt-1 text-xs text-slate-500">{hint}</div>}
    </div>
  );
}

const STATUS_STYLE: Record<string, string> = {
  pending: "bg-slate-100 text-slate-700 ring-slate-300",
  assigned: "bg-sky-50 text-sky-700 ring-sky-200",
  running: "bg-indigo-50 text-indigo-700 ring-indigo-200",
  completed: "bg-emerald-50 text-emerald-700 ring-emerald-200",
  failed: "bg-rose-50 text-rose-700 ring-rose-200",
  cancelled: "bg-amber-50 text-amber-800 ring-amber-200",
  idle: "bg-emerald-50 text-emerald-700 ring-emerald-200",
  busy: "bg-indigo-50 text-indigo-700 ring-indigo-200",
  offline: "bg-slate-100 text-slate-500 ring-slate-300",
};

export const STATUS_COLOR: Record<JobStatus, string> = {
  pending: "#94a3b8",
  assigned: "#38bdf8",
  running: "#6366f1",
  completed: "#10b981",
  failed: "#f43f5e",
  cancelled: "#f59e0b",
};

export function StatusBadge({ status, testId }: { status: string; testId?: string }) {
  return (
    <span
      data-testid={testId}
      data-status={status}
      className={`inline-flex items-center gap-1.5 rounded-full px-2.5 py-0.5 text-xs font-medium ring-1 ring-inset ${STATUS_STYLE[status] ?? "bg-slate-100 text-slate-700 ring-slate-300"}`}
    >
      {status === "running" && <span className="h-1.5 w-1.5 animate-pulse rounded-full bg-indigo-500" aria-hidden />}
      {status}
    </span>
  );
}

export function EmptyState({ title, children, icon }: { title: string; children?: ReactNode; icon?: ReactNode }) {
  return (
    <div className="flex flex-col items-center justify-center px-6 py-12 text-center" role="status">
      <div
        className="mb-3 flex h-10 w-10 items-center justify-center rounded-full bg-slate-100 text-slate-400"
        aria-hidden
      >
        {icon ?? (
          <svg viewBox="0 0 20 20" className="h-5 w-5" fill="currentColor">
            <path d="M3 4a1 1 0 011-1h12a1 1 0 011 1v2H3V4zm0 4h14v8a1 1 0 01-1 1H4a1 1 0 01-1-1V8zm5 2a1 1 0 000 2h4a1 1 0 100-2H8z" />
          </svg>
        )}
      </div>
      <p className="text-sm font-medium text-slate-700">{title}</p>
      {children && <div className="mt-1 max-w-md text-sm text-slate-500">{children}</div>}
    </div>
  );
}

export function ErrorState({ title, message, onRetry }: { title: string; message?: string; onRetry?: () => void }) {
  return (
    <div role="alert" className="rounded-xl border border-rose-200 bg-rose-50 px-5 py-4 text-sm text-rose-800">
      <p className="font-medium">{title}</p>
      {message && <p className="mt-1 text-rose-700">{message}</p>}
      {onRetry && (
        <button type="button" className="btn-secondary mt-3" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Meter({
  value,
  label,
  tone = "indigo",
}: {
  value: number;
  label: string;
  tone?: "indigo" | "emerald" | "amber" | "rose";
}) {
  const colors: Record<string, string> = {
    indigo: "bg-indigo-500",
    emerald: "bg-emerald-500",
    amber: "bg-amber-500",
    rose: "bg-rose-500",
  };
  const v = Math.max(0, Math.min(100, value));
  const color = v >= 90 ? colors.rose : v >= 70 ? colors.amber : colors[tone];
  return (
    <div
      className="h-2 w-full overflow-hidden rounded-full bg-slate-100"
      role="meter"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={Math.round(v)}
    >
      <div className={`h-full rounded-full ${color} transition-[width] duration-500`} style={{ width: `${v}%` }} />
    </div>
  );
}

export function Spinner({ label = "Loading" }: { label?: string }) {
  return (
    <div className="flex items-center justify-center gap-2 py-10 text-sm text-slate-500" role="status">
      <svg className="h-4 w-4 animate-spin" viewBox="0 0 24 24" fill="none" aria-hidden>
        <circle cx="12" cy="12" r="10" stroke="currentColor" strokeOpacity="0.25" strokeWidth="4" />
        <path d="M22 12a10 10 0 00-10-10" stroke="currentColor" strokeWidth="4" strokeLinecap="round" />
      </svg>
      {label}…
    </div>
  );
}

export function Field({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="min-w-0">
      <dt className="text-xs font-medium uppercase tracking-wide text-slate-500">{label}</dt>
      <dd className="mt-1 break-words text-sm text-slate-900">{children}</dd>
    </div>
  );
}

export interface Column {
  label: ReactNode;
  className?: string;
}

/** A table that scrolls sideways on narrow screens, with a header row of @columns. */
export function Table({ label, columns, children }: { label: string; columns: Column[]; children: ReactNode }) {
  return (
    <div className="overflow-x-auto">
      <table className="min-w-full divide-y divide-slate-100" aria-label={label}>
        <thead className="bg-slate-50">
          <tr>
            {columns.map((c, i) => (
              <th key={i} scope="col" className={`th ${c.className ?? ""}`}>
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100 bg-white">{children}</tbody>
      </table>
    </div>
  );
}

/** A form's error message under its fields. */
export function FormError({ message, className = "" }: { message: string | null; className?: string }) {
  if (!message) return null;
  return (
    <p role="alert" className={`text-xs font-medium text-rose-600 ${className}`}>
      {message}
    </p>
  );
}

/** A form of one labelled text field and a button, in a row from the small breakpoint up. */
export function OneFieldForm({
  name,
  label,
  value,
  onChange,
  onSubmit,
  button,
  error,
  buttonClass = "btn-primary",
  busy = false,
  inputClass = "",
  inputMode,
  placeholder,
}: {
  name: string;
  label: string;
  value: string;
  onChange: (v: string) => void;
  onSubmit: () => void;
  button: string;
  error: string | null;
  buttonClass?: string;
  busy?: boolean;
  inputClass?: string;
  inputMode?: "decimal" | "text";
  placeholder?: string;
}) {
  const id = useId();
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit();
      }}
      className="flex flex-col gap-2 sm:flex-row sm:items-end"
      aria-label={name}
    >
      <div className="flex-1">
        <label htmlFor={id} className="label">
          {label}
        </label>
        <input
          id={id}
          className={`input ${inputClass} ${error ? "input-error" : ""}`}
          value={value}
          onChange={(e) => onChange(e.target.value)}
          aria-invalid={!!error}
          spellCheck={false}
          inputMode={inputMode}
          placeholder={placeholder}
        />
        <FormError message={error} className="mt-1" />
      </div>
      <button type="submit" className={buttonClass} disabled={busy}>
        {button}
      </button>
    </form>
  );
}
