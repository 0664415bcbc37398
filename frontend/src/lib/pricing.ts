// Metered and market pricing as the coordinator computes it (coordinator/README.md "Pricing,
// reputation and statements"): exact integer micro-credits (BigInt), divided once at the end and
// rounded down. The flat formula stays in credits.ts (jobCostMicro).
import { toMicro } from "./credits";
import type { Pricing, StatementDay, Worker } from "./types";

export type PricingMode = "flat" | "metered" | "market";

/** A price pair in micro-credits per core-second and per GB-second (1 GB = 1024 MB). */
export interface Rate {
  core: bigint;
  gb: bigint;
}

export function pricingMode(p: Pricing | null | undefined): PricingMode {
  return p?.mode === "metered" || p?.mode === "market" ? p.mode : "flat";
}

/** micro-credits for @seconds of @cores and @ramMb at @rate: floor(s * (c*pc*1024 + r*pg) / 1024). */
export function amountMicro(rate: Rate, cores: bigint, ramMb: bigint, seconds: bigint): bigint {
  return (seconds * (cores * rate.core * 1024n + ramMb * rate.gb)) / 1024n;
}

/** Started seconds of a run: ceil(wall_ms / 1000), at least 1, at most the timeout. */
export function startedSeconds(wallMs: number, timeoutSeconds: number): number {
  const s = wallMs <= 0 ? 1 : Math.ceil(wallMs / 1000);
  return Math.max(1, Math.min(s, timeoutSeconds));
}

/** A worker's market prices, or null when it shows none. */
export function workerRate(w: Worker): Rate | null {
  const core = toMicro(w.price_per_core_second ?? null);
  const gb = toMicro(w.price_per_gb_second ?? null);
  return core === null || gb === null ? null : { core, gb };
}

/** The rate of one second of the reservation, scaled by 1024 (exact, for comparing). */
function scaled(rate: Rate, cores: bigint, ramMb: bigint): bigint {
  return cores * rate.core * 1024n + ramMb * rate.gb;
}

export interface PriceRange {
  /** Online workers that fit the resources and show prices. */
  count: number;
  cheapest: Rate | null;
  dearest: Rate | null;
  /** micro-credits per second of the reservation at the cheapest and dearest price (rounded down). */
  minPerSecond: bigint | null;
  maxPerSecond: bigint | null;
  /** Every fitting worker's prices. */
  rates: Rate[];
}

/** The range of market prices available for @cores and @ramMb among the workers that fit. */
export function priceRange(workers: Worker[], cores: number, ramMb: number): PriceRange {
  const c = BigInt(cores);
  const r = BigInt(ramMb);
  let cheapest: Rate | null = null;
  let dearest: Rate | null = null;
  let count = 0;
  const rates: Rate[] = [];
  for (const w of workers) {
    if (w.status === "offline" || w.cpu_cores < cores || w.ram_mb < ramMb) continue;
    const rate = workerRate(w);
    if (!rate) continue;
    count++;
    rates.push(rate);
    if (!cheapest || scaled(rate, c, r) < scaled(cheapest, c, r)) cheapest = rate;
    if (!dearest || scaled(rate, c, r) > scaled(dearest, c, r)) dearest = rate;
  }
  return {
    count,
    cheapest,
    dearest,
    minPerSecond: cheapest ? amountMicro(cheapest, c, r, 1n) : null,
    maxPerSecond: dearest ? amountMicro(dearest, c, r, 1n) : null,
    rates,
  };
}

export interface Estimate {
  mode: PricingMode;
  /** What is held at submit (null when it cannot be computed yet). */
  hold: bigint | null;
  /** The charge per started second (metered and market), null in flat mode. */
  perSecond: bigint | null;
  /** The charge if the job ran its whole timeout: the most it can cost. */
  expectedMax: bigint | null;
}

/**
 * The hold and the charge of a job with @cores, @ramMb and @timeoutSeconds: metered at the
 * configured prices; market with the buyer's maximum @max for the hold and the cheapest fitting
 * seller within it (@range) for the charge.
 */
export function estimate(
  pricing: Pricing | null,
  cores: number,
  ramMb: number,
  timeoutSeconds: number,
  max: Rate | null,
  range: PriceRange | null,
): Estimate {
  const mode = pricingMode(pricing);
  const c = BigInt(cores);
  const r = BigInt(ramMb);
  const t = BigInt(timeoutSeconds);
  if (mode === "metered") {
    const core = toMicro(pricing?.price_per_core_second ?? null);
    const gb = toMicro(pricing?.price_per_gb_second ?? null);
    if (core === null || gb === null) return { mode, hold: null, perSecond: null, expectedMax: null };
    const rate = { core, gb };
    const hold = amountMicro(rate, c, r, t);
    return { mode, hold, perSecond: amountMicro(rate, c, r, 1n), expectedMax: hold };
  }
  if (mode === "market") {
    if (!max) return { mode, hold: null, perSecond: null, expectedMax: null };
    const hold = amountMicro(max, c, r, t);
    // The scheduler's choice: the cheapest fitting seller within both maximums.
    let seller: Rate | null = null;
    for (const rate of range?.rates ?? []) {
      if (rate.core > max.core || rate.gb > max.gb) continue;
      if (!seller || scaled(rate, c, r) < scaled(seller, c, r)) seller = rate;
    }
    return {
      mode,
      hold,
      perSecond: seller ? amountMicro(seller, c, r, 1n) : null,
      expectedMax: seller ? amountMicro(seller, c, r, t) : null,
    };
  }
  return { mode, hold: null, perSecond: null, expectedMax: null };
}

/** Parses a price or maximum typed in a form: credits >= 0 with at most 6 decimals; null if not. */
export function parsePrice(text: string): number | null {
  const t = text.trim();
  if (!/^\d+(\.\d{1,6})?$/.test(t)) return null;
  return Number(t);
}

/** Parses a minimum reputation typed in a form: 0-1 with at most 6 decimals; null if not. */
export function parseReputation(text: string): number | null {
  const n = parsePrice(text);
  return n === null || n > 1 ? null : n;
}

/** Reputation (0-1 as the API gives it) as a whole percentage, or "—". */
export function formatReputation(value: number | string | null | undefined): string {
  const m = toMicro(value ?? null);
  if (m === null) return "—";
  return `${(Number(m) / 10000).toFixed(0)}%`;
}

export interface Bar {
  day: string;
  value: bigint;
  /** 0-1 of the largest value shown. */
  height: number;
}

/** Bars of one statement column (spent, earned or fees) scaled to the largest day. */
export function statementBars(days: StatementDay[], key: "spent" | "earned" | "fees"): Bar[] {
  const values = days.map((d) => toMicro(d[key]) ?? 0n);
  const top = values.reduce((a, b) => (b > a ? b : a), 0n);
  return days.map((d, i) => ({
    day: d.day,
    value: values[i],
    height: top === 0n ? 0 : Number((values[i] * 1000n) / top) / 1000,
  }));
}
