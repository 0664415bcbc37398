// A user's spending or earnings per day (GET /users/{id}/statement) as SVG bars, no chart library.
import { useQuery } from "@tanstack/react-query";
import { EmptyState, ErrorState, Spinner } from "./ui";
import type { ApiError } from "../lib/api";
import { formatMicro } from "../lib/credits";
import { statementBars } from "../lib/pricing";
import { statementQuery } from "../queries/statement";

export function StatementChart({
  user,
  column,
  label,
  days = 30,
}: {
  user: string;
  column: "spent" | "earned" | "fees";
  label: string;
  days?: number;
}) {
  const q = useQuery(statementQuery(user, days));
  if (q.isLoading) return <Spinner label={`Loading ${label.toLowerCase()}`} />;
  if (q.isError) {
    const e = q.error as ApiError;
    if (e.status === 404) return <EmptyState title="Nothing yet" />;
    return (
      <ErrorState title={`Could not load ${label.toLowerCase()}`} message={e.message} onRetry={() => q.refetch()} />
    );
  }
  const bars = statementBars(q.data ?? [], column);
  const total = bars.reduce((s, b) => s + b.value, 0n);
  const W = 600;
  const H = 120;
  const step = bars.length > 0 ? W / bars.length : W;
  return (
    <figure className="p-5" data-testid={`statement-${column}`} data-total={formatMicro(total)}>
      <figcaption className="mb-2 flex justify-between text-xs text-slate-600">
        <span>
          {label} per day, last {days} days (UTC)
        </span>
        <span className="tabular-nums" data-testid={`statement-${column}-total`}>
          {formatMicro(total)} credits
        </span>
      </figcaption>
      <svg
        viewBox={`0 0 ${W} ${H}`}
        preserveAspectRatio="none"
        className="h-32 w-full"
        role="img"
        aria-label={`${label} per day`}
      >
        <line x1={0} y1={H - 0.5} x2={W} y2={H - 0.5} stroke="#cbd5e1" />
        {bars.map((b, i) => {
          const h = Math.max(b.value > 0n ? 2 : 0, b.height * (H - 4));
          return (
            <rect
              key={b.day}
              x={i * step + step * 0.15}
              y={H - h}
              width={step * 0.7}
              height={h}
              className="fill-indigo-500"
              data-day={b.day}
              data-value={formatMicro(b.value)}
            >
              <title>
                {b.day}: {formatMicro(b.value)} credits
              </title>
            </rect>
          );
        })}
      </svg>
      <div className="mt-1 flex justify-between text-[10px] text-slate-400">
        <span>{bars[0]?.day ?? ""}</span>
        <span>{bars[bars.length - 1]?.day ?? ""}</span>
      </div>
    </figure>
  );
}
