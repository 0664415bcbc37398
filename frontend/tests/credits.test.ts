import { describe, expect, it } from "vitest";
import { formatCredits, formatMicro, jobCostMicro, toMicro } from "../src/lib/credits";
import { backoffMs, ratePerMinute } from "../src/lib/live";

describe("toMicro", () => {
  it("parses numbers and decimal text exactly", () => {
    expect(toMicro(0.1)).toBe(100000n);
    expect(toMicro(0.001)).toBe(1000n);
    expect(toMicro("100.000001")).toBe(100000001n);
    expect(toMicro(100)).toBe(100000000n);
    expect(toMicro("-2.5")).toBe(-2500000n);
    expect(toMicro(1e-6)).toBe(1n);
    expect(toMicro("1e3")).toBe(1000000000n);
    expect(toMicro(123456789.123456)).toBe(123456789123456n);
  });
  it("rounds half up past six decimals", () => {
    expect(toMicro("0.0000005")).toBe(1n);
    expect(toMicro("0.00000049")).toBe(0n);
    expect(toMicro(1e-7)).toBe(0n);
  });
  it("rejects what is not a number", () => {
    expect(toMicro("abc")).toBeNull();
    expect(toMicro("")).toBeNull();
    expect(toMicro(".")).toBeNull();
    expect(toMicro(NaN)).toBeNull();
    expect(toMicro(null)).toBeNull();
  });
});

describe("formatting", () => {
  it("shows 2 to 6 decimals with grouping", () => {
    expect(formatMicro(100000000n)).toBe("100.00");
    expect(formatMicro(240960n)).toBe("0.24096");
    expect(formatMicro(1234567890123n)).toBe("1,234,567.890123");
    expect(formatMicro(-500000n)).toBe("-0.50");
    expect(formatCredits(undefined)).toBe("—");
  });
});

describe("jobCostMicro", () => {
  const pc = toMicro(0.1)!;
  const pr = toMicro(0.001)!;
  it("prices the README example exactly", () => {
    // 2 * 0.1 + 4096 / 100 * 0.001 = 0.2 + 0.04096
    expect(jobCostMicro(2n, 4096n, pc, pr)).toBe(240960n);
  });
  it("rounds the RAM part half up to micro-credits", () => {
    // 150 / 100 * 0.000001 = 0.0000015 -> 0.000002
    expect(jobCostMicro(0n, 150n, 0n, 1n)).toBe(2n);
    // 149 / 100 * 0.000001 = 0.00000149 -> 0.000001
    expect(jobCostMicro(0n, 149n, 0n, 1n)).toBe(1n);
    // 50 / 100 * 0.000001 = 0.0000005 -> 0.000001 (half up)
    expect(jobCostMicro(0n, 50n, 0n, 1n)).toBe(1n);
  });
  it("stays exact where floating point would not", () => {
    // 3 * 0.1 is 0.30000000000000004 in floating point.
    expect(jobCostMicro(3n, 0n, pc, pr)).toBe(300000n);
    expect(jobCostMicro(1000000n, 1000000000n, 123456789n, 987654321n)).toBe(123456789000000n + 9876543210000000n);
  });
});

describe("live helpers", () => {
  it("backoff doubles from 0.5 s to a 15 s cap, jitter only adds", () => {
    expect(backoffMs(0, () => 0)).toBe(500);
    expect(backoffMs(1, () => 0)).toBe(1000);
    expect(backoffMs(4, () => 0)).toBe(8000);
    expect(backoffMs(5, () => 0)).toBe(15000);
    expect(backoffMs(50, () => 0)).toBe(15000);
    expect(backoffMs(0, () => 1)).toBe(650);
  });
  it("ratePerMinute does not extrapolate a partial minute", () => {
    const r = ratePerMinute([
      { t: 0, finished: 0, running: 0 },
      { t: 10000, finished: 3, running: 0 },
    ]);
    expect(r[1].rate).toBe(3);
  });
  it("ratePerMinute computes finished jobs per minute over a trailing minute", () => {
    const r = ratePerMinute([
      { t: 0, finished: 0, running: 1 },
      { t: 30000, finished: 5, running: 2 },
      { t: 60000, finished: 10, running: 3 },
      { t: 120000, finished: 10, running: 0 },
    ]);
    expect(r.map((x) => x.rate)).toEqual([0, 5, 10, 0]);
    expect(r[2].running).toBe(3);
  });
});
