import { describe, expect, it } from "vitest";
import {
  amountMicro,
  estimate,
  formatReputation,
  parsePrice,
  parseReputation,
  priceRange,
  pricingMode,
  startedSeconds,
  statementBars,
} from "../src/lib/pricing";
import type { Worker } from "../src/lib/types";
import { EXAMPLE_FORM, validateSubmit } from "../src/lib/validate";

const worker = (id: string, core: number, gb: number, patch: Partial<Worker> = {}): Worker => ({
  worker_id: id,
  cpu_cores: 4,
  ram_mb: 4096,
  status: "idle",
  price_per_core_second: core,
  price_per_gb_second: gb,
  ...patch,
});

describe("metered arithmetic (the coordinator's rule: exact, rounded down once)", () => {
  it("matches the hand-computed figures of the coordinator's tests", () => {
    const r = { core: 100n, gb: 50n };
    expect(amountMicro(r, 2n, 512n, 1n)).toBe(225n);
    expect(amountMicro(r, 2n, 512n, 10n)).toBe(2250n);
    expect(amountMicro({ core: 0n, gb: 7n }, 1n, 100n, 1n)).toBe(0n); // 0.68 dropped
    expect(amountMicro({ core: 0n, gb: 7n }, 1n, 100n, 2n)).toBe(1n);
  });
  it("bills started seconds, never past the timeout", () => {
    expect(startedSeconds(1, 10)).toBe(1);
    expect(startedSeconds(1000, 10)).toBe(1);
    expect(startedSeconds(1001, 10)).toBe(2);
    expect(startedSeconds(50_000, 10)).toBe(10);
  });
});

describe("market prices", () => {
  const workers = [
    worker("w1", 0.0003, 0.0001),
    worker("w2", 0.0001, 0.00005),
    worker("w3", 0.0002, 0.00005),
    worker("small", 0.00001, 0, { cpu_cores: 1 }),
    worker("gone", 0.00001, 0, { status: "offline" }),
  ];
  it("gives the range among online workers that fit", () => {
    const r = priceRange(workers, 2, 1024);
    expect(r.count).toBe(3);
    expect(r.cheapest).toEqual({ core: 100n, gb: 50n });
    expect(r.minPerSecond).toBe(250n); // 2 x 100 + 1024 MB x 50 / 1024
    expect(r.maxPerSecond).toBe(700n); // 2 x 300 + 100
  });
  it("holds the maximum and expects the cheapest seller within it", () => {
    const range = priceRange(workers, 2, 1024);
    const e = estimate(
      { cost_per_core: 0.1, cost_per_100mb_ram: 0.001, mode: "market" },
      2,
      1024,
      10,
      { core: 250n, gb: 100n },
      range,
    );
    // hold: 10 s x (2 x 250 + 100); w2 (100, 50) is the cheapest within: 2 x 100 + 50 per second
    expect(e.hold).toBe(6000n);
    expect(e.perSecond).toBe(250n);
    expect(e.expectedMax).toBe(2500n);
    const none = estimate(
      { cost_per_core: 0.1, cost_per_100mb_ram: 0.001, mode: "market" },
      2,
      1024,
      10,
      { core: 50n, gb: 1000n },
      range,
    );
    expect(none.hold).toBe(11000n);
    expect(none.perSecond).toBeNull();
  });
  it("estimates metered jobs from the configured prices", () => {
    const e = estimate(
      {
        cost_per_core: 0.1,
        cost_per_100mb_ram: 0.001,
        mode: "metered",
        price_per_core_second: 0.0001,
        price_per_gb_second: 0.00005,
      },
      2,
      512,
      10,
      null,
      null,
    );
    expect(e).toEqual({ mode: "metered", hold: 2250n, perSecond: 225n, expectedMax: 2250n });
    expect(pricingMode(null)).toBe("flat");
    expect(pricingMode({ cost_per_core: 1, cost_per_100mb_ram: 1, mode: "auction" })).toBe("flat");
  });
});

describe("form values", () => {
  it("parses prices and reputations", () => {
    expect(parsePrice("0.0001")).toBe(0.0001);
    expect(parsePrice("1.0000001")).toBeNull();
    expect(parsePrice("-1")).toBeNull();
    expect(parseReputation("0.7")).toBe(0.7);
    expect(parseReputation("1.5")).toBeNull();
    expect(formatReputation(0.666666)).toBe("67%");
    expect(formatReputation(undefined)).toBe("—");
  });
  it("validates min_reputation and the market's maximum prices", () => {
    const bad = validateSubmit({ ...EXAMPLE_FORM, min_reputation: "2" });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.errors.min_reputation).toMatch(/between 0 and 1/);
    const market = validateSubmit({ ...EXAMPLE_FORM }, { market: true });
    expect(market.ok).toBe(false);
    if (!market.ok) {
      expect(market.errors.max_price_per_core_second).toMatch(/Required/);
      expect(market.errors.max_price_per_gb_second).toMatch(/Required/);
    }
    const ok = validateSubmit(
      { ...EXAMPLE_FORM, min_reputation: "0.5", max_price_per_core_second: "0.0002", max_price_per_gb_second: "0" },
      { market: true },
    );
    expect(ok.ok).toBe(true);
    if (ok.ok) {
      expect(ok.body.min_reputation).toBe(0.5);
      expect(ok.body.max_price_per_core_second).toBe(0.0002);
      expect(ok.body.max_price_per_gb_second).toBe(0);
    }
    const flat = validateSubmit({ ...EXAMPLE_FORM });
    expect(flat.ok && "max_price_per_core_second" in flat.body).toBe(false);
  });
});

describe("statement bars", () => {
  it("scales each day to the largest, exactly", () => {
    const bars = statementBars(
      [
        { day: "2026-12-05", spent: 0, earned: 0, fees: 0 },
        { day: "2026-12-06", spent: 0.0003, earned: 0, fees: 0 },
        { day: "2026-12-07", spent: 0.0006, earned: 0, fees: 0 },
      ],
      "spent",
    );
    expect(bars.map((b) => b.value)).toEqual([0n, 300n, 600n]);
    expect(bars.map((b) => b.height)).toEqual([0, 0.5, 1]);
    expect(statementBars([{ day: "2026-12-07", spent: 0, earned: 0, fees: 0 }], "earned")[0].height).toBe(0);
  });
});
