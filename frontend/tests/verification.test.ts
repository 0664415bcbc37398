import { describe, expect, it } from "vitest";
import { verificationRows, verificationSummary, type Verification } from "../src/lib/verification";

const digest = "0123456789abcdef".repeat(4);

const decided: Verification = {
  state: "agreed",
  majority: 2,
  results: [
    { job_id: "r1", worker_id: "w1", owner_id: "o1", digest, agrees: true, outcome: "agree", tiebreak: false },
    { job_id: "r2", worker_id: "w2", owner_id: "o2", digest: "ff".repeat(32), agrees: false, outcome: "mismatch" },
    { job_id: "r3", worker_id: "w3", owner_id: "o3", digest: null, agrees: false, outcome: "void", tiebreak: true },
  ],
};

describe("verificationRows", () => {
  it("shows worker, owner, a digest prefix and whether each replica agrees", () => {
    const rows = verificationRows(decided);
    expect(rows).toHaveLength(3);
    expect(rows[0]).toEqual({
      jobId: "r1",
      worker: "w1",
      owner: "o1",
      digest: "0123456789ab",
      agrees: "yes",
      note: "agree",
    });
    expect(rows[1].agrees).toBe("no");
    expect(rows[1].digest).toBe("ffffffffffff");
    expect(rows[2]).toMatchObject({ digest: "—", agrees: "no", note: "void, tie-break" });
  });
  it("leaves agrees open until the majority decided", () => {
    const rows = verificationRows({
      state: "pending",
      majority: 2,
      results: [{ ...decided.results[0], agrees: null, outcome: null }],
    });
    expect(rows[0].agrees).toBe("—");
    expect(rows[0].note).toBe("");
  });
  it("has no rows for an ordinary job", () => {
    expect(verificationRows(null)).toEqual([]);
    expect(verificationRows(undefined)).toEqual([]);
  });
});

describe("verificationSummary", () => {
  it("names the state and the majority", () => {
    expect(verificationSummary(decided, 3)).toBe("agreed (majority 2 of 3)");
    expect(verificationSummary({ ...decided, state: "unverified" }, 2)).toBe("unverified: no majority 2 of 2 formed");
    expect(verificationSummary({ ...decided, state: "pending" }, 3)).toBe("pending (majority 2 of 3 needed)");
  });
});
