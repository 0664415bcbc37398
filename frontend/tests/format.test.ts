import { describe, expect, it } from "vitest";
import { formatDuration, wallTime } from "../src/lib/format";

describe("wall time on the job page", () => {
  const t0 = Date.parse("2026-12-07T10:00:00.000Z");
  it("uses the reported usage once there is one", () => {
    expect(wallTime(1500, false, "2026-12-07T10:00:00.000Z", t0 + 9000)).toBe(1500);
  });
  it("counts from the start while running", () => {
    expect(wallTime(null, true, "2026-12-07T10:00:00.000Z", t0 + 2500)).toBe(2500);
  });
  it("never goes below zero when the page's clock lags the start it just read", () => {
    const w = wallTime(undefined, true, "2026-12-07T10:00:00.900Z", t0);
    expect(w).toBe(0);
    expect(formatDuration(w)).toBe("0 ms");
  });
  it("has none for a job that neither ran nor reported", () => {
    expect(wallTime(null, false, null, t0)).toBeNull();
    expect(wallTime(null, true, null, t0)).toBeNull();
  });
});
