// A small dependency-free SVG line chart for two series over time.

export interface Point {
  t: number;
  a: number;
  b: number;
}

export function LiveChart({
  points,
  labelA,
  labelB,
  windowMs,
  now,
}: {
  points: Point[];
  labelA: string;
  labelB: string;
  windowMs: number;
  now: number;
}) {
  const W = 600;
  const H = 180;
  const pad = { l: 32, r: 8, t: 10, b: 22 };
  const t0 = now - windowMs;
  const visible = points.filter((p) => p.t >= t0);
  const max = Math.max(1, ...visible.map((p) => Math.max(p.a, p.b)));
  const yMax = niceCeil(max);
  const x = (t: number) => pad.l + ((t - t0) / windowMs) * (W - pad.l - pad.r);
  const y = (v: number) => H - pad.b - (v / yMax) * (H - pad.t - pad.b);
  const path = (key: "a" | "b") =>
    visible.map((p, i) => `${i === 0 ? "M" : "L"}${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
  const ticks = [0, yMax / 2, yMax];
  const last = visible[visible.length - 1];
  const minutes = Math.round(windowMs / 60000);

  // The plot stretches to the card's width (preserveAspectRatio none), so its text is HTML laid
  // over it rather than SVG text, which would be distorted.
  return (
    <figure>
      <div className="relative">
        <svg
          viewBox={`0 0 ${W} ${H}`}
          className="h-48 w-full"
          role="img"
          aria-label={`${labelA} and ${labelB} over the last ${minutes} minutes${
            last ? `: now ${last.a.toFixed(1)} and ${last.b}` : ""
          }`}
          preserveAspectRatio="none"
        >
          {ticks.map((v) => (
            <line
              key={v}
              x1={pad.l}
              x2={W - pad.r}
              y1={y(v)}
              y2={y(v)}
              stroke="#e2e8f0"
              strokeDasharray={v === 0 ? undefined : "3 3"}
              vectorEffect="non-scaling-stroke"
            />
          ))}
          {visible.length > 1 && (
            <>
              <path d={path("b")} fill="none" stroke="#10b981" strokeWidth="2" vectorEffect="non-scaling-stroke" />
              <path d={path("a")} fill="none" stroke="#6366f1" strokeWidth="2" vectorEffect="non-scaling-stroke" />
            </>
          )}
        </svg>
        {ticks.map((v) => (
          <span
            key={v}
            className="pointer-events-none absolute left-0 -translate-y-1/2 text-[10px] tabular-nums text-slate-400"
            style={{ top: `${(y(v) / H) * 100}%` }}
            aria-hidden
          >
            {Number.isInteger(v) ? v : v.toFixed(1)}
          </span>
        ))}
        <div
          className="pointer-events-none absolute bottom-0 flex justify-between text-[10px] text-slate-400"
          style={{ left: `${(pad.l / W) * 100}%`, right: `${(pad.r / W) * 100}%` }}
          aria-hidden
        >
          <span>−{minutes} min</span>
          <span>now</span>
        </div>
      </div>
      <figcaption className="mt-2 flex flex-wrap gap-4 text-xs text-slate-600">
        <span className="inline-flex items-center gap-1.5">
          <span className="h-2 w-3 rounded-sm bg-indigo-500" aria-hidden /> {labelA}
        </span>
        <span className="inline-flex items-center gap-1.5">
          <span className="h-2 w-3 rounded-sm bg-emerald-500" aria-hidden /> {labelB}
        </span>
        {visible.length < 2 && <span className="text-slate-400">Collecting samples…</span>}
      </figcaption>
    </figure>
  );
}

function niceCeil(v: number): number {
  if (v <= 5) return Math.ceil(v);
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
