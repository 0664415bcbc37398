// Exact credit arithmetic: credits travel as JSON numbers with at most 6 decimals and are
// handled here as integer micro-credits (BigInt), never as floating point.

export const MICRO = 1_000_000n;

/**
 * Parses a credit amount (a JSON number or its decimal text) into micro-credits, rounding half
 * up past the sixth decimal. Returns null for anything that is not a finite decimal number.
 */
export function toMicro(value: number | string | null | undefined): bigint | null {
  if (value === null || value === undefined) return null;
  let text: string;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return null;
    // The shortest text that reads back as this double: "0.1" for 0.1, as the server wrote it.
    text = String(value);
  } else {
    text = value.trim();
  }
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m || (m[2] === "" && (m[3] ?? "") === "")) return null;
  const negative = m[1] === "-";
  let digits = (m[2] || "0") + (m[3] ?? "");
  const scale = (m[3] ?? "").length - (m[4] ? parseInt(m[4], 10) : 0);
  if (Math.abs(scale) > 400) return null;
  // value = digits * 10^-scale; bring it to scale 6.
  let micro: bigint;
  if (scale <= 6) {
    micro = BigInt(digits) * 10n ** BigInt(6 - scale);
  } else {
    const drop = scale - 6;
    if (digits.length <= drop) digits = "0".repeat(drop - digits.length + 1) + digits;
    const keep = BigInt(digits.slice(0, digits.length - drop));
    const rest = digits.slice(digits.length - drop);
    micro = rest[0] >= "5" ? keep + 1n : keep;
  }
  return negative ? -micro : micro;
}

/** Formats micro-credits as a decimal with at least 2 and at most 6 decimals. */
export function formatMicro(micro: bigint): string {
  const negative = micro < 0n;
  const abs = negative ? -micro : micro;
  const whole = abs / MICRO;
  let frac = (abs % MICRO).toString().padStart(6, "0").replace(/0+$/, "");
  if (frac.length < 2) frac = frac.padEnd(2, "0");
  const grouped = whole.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${negative ? "-" : ""}${grouped}.${frac}`;
}

/** Formats a credit amount as the API gives it; "—" when absent or not a number. */
export function formatCredits(value: number | string | null | undefined): string {
  const micro = toMicro(value);
  return micro === null ? "—" : formatMicro(micro);
}

/**
 * The cost of a job exactly as API.md defines it:
 * `required_cores * COST_PER_CORE + required_ram_mb / 100 * COST_PER_100MB_RAM`,
 * computed exactly and rounded half up to micro-credits. Inputs must be non-negative.
 */
export function jobCostMicro(
  cores: bigint,
  ramMb: bigint,
  costPerCoreMicro: bigint,
  costPer100MbMicro: bigint,
): bigint {
  const coresPart = cores * costPerCoreMicro;
  // ram/100 * price has at most two more decimals than the price: round them half up.
  const ramHundredths = ramMb * costPer100MbMicro; // in 1/100 micro-credits
  const ramPart = (ramHundredths + 50n) / 100n;
  return coresPart + ramPart;
}
