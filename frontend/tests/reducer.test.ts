import { describe, expect, it } from "vitest";
import { initialState, isNotOlder, MAX_JOBS, reduce, type DashState } from "../src/lib/reducer";
import type { EventMsg, Job, SnapshotMsg, Worker } from "../src/lib/types";

function job(id: string, status: Job["status"], extra: Partial<Job> = {}): Job {
  return {
    job_id: id,
    title: `job ${id}`,
    status,
    required_cores: 1,
    required_ram_mb: 128,
    created_at: `2026-11-29T10:00:${id.padStart(2, "0")}.000Z`,
    ...extra,
  };
}
function worker(id: string, status = "idle"): Worker {
  return { worker_id: id, cpu_cores: 4, ram_mb: 4096, status };
}
function snapshot(seq: number, jobs: Job[] = [], workers: Worker[] = []): SnapshotMsg {
  return {
    type: "snapshot",
    seq,
    jobs,
    workers,
    health: { status: "healthy", jobs: { pending: jobs.length } },
    pricing: { cost_per_core: 0.1, cost_per_100mb_ram: 0.001, max_job_cores: 8, max_job_ram_mb: 16384 },
  };
}
const ev = (e: EventMsg) => ({ kind: "event" as const, msg: e, now: 1000 });
const snap = (s: SnapshotMsg, now = 500) => ({ kind: "snapshot" as const, msg: s, now });

function start(): DashState {
  return reduce(initialState(), snap(snapshot(10, [job("1", "pending"), job("2", "running")], [worker("w1")])));
}

describe("snapshot", () => {
  it("replaces lists, sets the sequence and marks the state loaded", () => {
    const s = start();
    expect(s.seq).toBe(10);
    expect(s.loaded).toBe(true);
    expect(s.source).toBe("ws");
    expect(s.jobs.map((j) => j.job_id)).toEqual(["2", "1"]); // newest first
    expect(s.workers.map((w) => w.worker_id)).toEqual(["w1"]);
    expect(s.pricing?.cost_per_core).toBe(0.1);
  });

  it("a later snapshot drops jobs and workers it does not list", () => {
    const s = reduce(start(), snap(snapshot(3, [job("7", "completed")], [])));
    expect(s.jobs.map((j) => j.job_id)).toEqual(["7"]);
    expect(s.workers).toEqual([]);
    expect(s.seq).toBe(3);
  });

  it("events before the first snapshot are ignored", () => {
    const s = reduce(initialState(), ev({ type: "job.updated", seq: 1, job: job("1", "running") }));
    expect(s.jobs).toEqual([]);
    expect(s.seq).toBeNull();
  });
});

describe("events in sequence", () => {
  it("job.updated updates a known job and records the transition", () => {
    const s = reduce(start(), ev({ type: "job.updated", seq: 11, job: job("1", "running", { assigned_worker: "w1" }) }));
    expect(s.seq).toBe(11);
    const j = s.jobs.find((x) => x.job_id === "1")!;
    expect(j.status).toBe("running");
    expect(j.assigned_worker).toBe("w1");
    expect(s.history["1"].map((t) => t.status)).toEqual(["pending", "running"]);
    expect(s.history["1"][1].at).toBe(1000);
  });

  it("job.updated for a new job inserts it in order", () => {
    const s = reduce(start(), ev({ type: "job.updated", seq: 11, job: job("3", "pending") }));
    expect(s.jobs.map((j) => j.job_id)).toEqual(["3", "2", "1"]);
  });

  it("keeps at most MAX_JOBS jobs, dropping the oldest", () => {
    let s = reduce(initialState(), snap(snapshot(0)));
    for (let i = 1; i <= MAX_JOBS + 5; i++) {
      const id = String(i);
      s = reduce(s, ev({ type: "job.updated", seq: i, job: job(id, "pending", { created_at: new Date(i * 1000).toISOString() }) }));
    }
    expect(s.jobs.length).toBe(MAX_JOBS);
    expect(s.jobs[0].job_id).toBe(String(MAX_JOBS + 5));
    expect(s.jobs.some((j) => j.job_id === "1")).toBe(false);
  });

  it("worker.updated upserts and worker.removed deletes", () => {
    let s = reduce(start(), ev({ type: "worker.updated", seq: 11, worker: worker("w1", "offline") }));
    s = reduce(s, ev({ type: "worker.updated", seq: 12, worker: worker("w0") }));
    expect(s.workers.map((w) => `${w.worker_id}:${w.status}`)).toEqual(["w0:idle", "w1:offline"]);
    s = reduce(s, ev({ type: "worker.removed", seq: 13, worker_id: "w1" }));
    expect(s.workers.map((w) => w.worker_id)).toEqual(["w0"]);
  });

  it("credits.updated and health.updated replace their values", () => {
    let s = reduce(start(), ev({ type: "credits.updated", seq: 11, user_id: "b", credits: 99.5, held: 0.5 }));
    s = reduce(s, ev({ type: "health.updated", seq: 12, health: { status: "healthy", jobs: { running: 4 } } }));
    expect(s.credits.b).toEqual({ credits: 99.5, held: 0.5 });
    expect(s.health?.jobs?.running).toBe(4);
    expect(s.seq).toBe(12);
  });

  it("ignores duplicates and replays (seq not above the last)", () => {
    const s1 = reduce(start(), ev({ type: "job.updated", seq: 11, job: job("1", "running") }));
    const s2 = reduce(s1, ev({ type: "job.updated", seq: 11, job: job("1", "failed") }));
    const s3 = reduce(s2, ev({ type: "job.updated", seq: 5, job: job("1", "failed") }));
    expect(s3).toBe(s1);
  });
});

describe("gaps", () => {
  it("a skipped sequence number asks for a resync and applies nothing", () => {
    const s0 = start();
    const s = reduce(s0, ev({ type: "job.updated", seq: 12, job: job("1", "completed") }));
    expect(s.needResync).toBe(true);
    expect(s.gaps).toBe(1);
    expect(s.seq).toBe(10);
    expect(s.jobs.find((j) => j.job_id === "1")!.status).toBe("pending");
  });

  it("events after a gap are ignored until the next snapshot", () => {
    let s = reduce(start(), ev({ type: "job.updated", seq: 12, job: job("1", "completed") }));
    s = reduce(s, ev({ type: "job.updated", seq: 13, job: job("2", "completed") }));
    expect(s.jobs.find((j) => j.job_id === "2")!.status).toBe("running");
    expect(s.gaps).toBe(1);
  });

  it("a snapshot after a gap restores the stream, which continues from its seq", () => {
    let s = reduce(start(), ev({ type: "job.updated", seq: 12, job: job("1", "completed") }));
    s = reduce(s, snap(snapshot(20, [job("1", "completed"), job("2", "running")]), 2000));
    expect(s.needResync).toBe(false);
    expect(s.seq).toBe(20);
    expect(s.jobs.find((j) => j.job_id === "1")!.status).toBe("completed");
    expect(s.history["1"].map((t) => t.status)).toEqual(["pending", "completed"]);
    s = reduce(s, ev({ type: "job.updated", seq: 21, job: job("2", "completed") }));
    expect(s.seq).toBe(21);
    expect(s.jobs.find((j) => j.job_id === "2")!.status).toBe("completed");
  });

  it("a closed socket forgets the sequence so the next session's snapshot starts afresh", () => {
    let s = reduce(start(), { kind: "socket-closed" });
    expect(s.seq).toBeNull();
    s = reduce(s, ev({ type: "job.updated", seq: 11, job: job("1", "running") }));
    expect(s.jobs.find((j) => j.job_id === "1")!.status).toBe("pending");
    s = reduce(s, snap(snapshot(1, [job("1", "running")])));
    s = reduce(s, ev({ type: "job.updated", seq: 2, job: job("1", "completed") }));
    expect(s.jobs[0].status).toBe("completed");
  });
});

describe("job output", () => {
  const out = (seq: number, offset: number, data: string, stream: "stdout" | "stderr" = "stdout", bytes?: number) =>
    ev({ type: "job.output", seq, job_id: "2", stream, offset, data, bytes });

  it("appends chunks in order per stream", () => {
    let s = reduce(start(), out(11, 0, "Hello "));
    s = reduce(s, out(12, 6, "World\n"));
    s = reduce(s, out(13, 0, "warn\n", "stderr"));
    expect(s.output["2"].stdout).toEqual({ text: "Hello World\n", next: 12 });
    expect(s.output["2"].stderr.text).toBe("warn\n");
    expect(s.output["2"].gap).toBe(false);
  });

  it("counts offsets in UTF-8 bytes", () => {
    let s = reduce(start(), out(11, 0, "é"));
    expect(s.output["2"].stdout.next).toBe(2);
    s = reduce(s, out(12, 2, "!"));
    expect(s.output["2"].stdout.text).toBe("é!");
  });

  it("uses the raw byte count when the server gives one", () => {
    const s = reduce(start(), out(11, 0, "\ufffd", "stdout", 1));
    expect(s.output["2"].stdout.next).toBe(1);
  });

  it("drops the overlapping part of a chunk and whole repeats", () => {
    let s = reduce(start(), out(11, 0, "abc"));
    s = reduce(s, out(12, 1, "bcde"));
    expect(s.output["2"].stdout.text).toBe("abcde");
    const before = s;
    s = reduce(s, out(13, 0, "abc"));
    expect(s.output["2"]).toBe(before.output["2"]);
  });

  it("flags a missing chunk so the page refetches the whole output", () => {
    let s = reduce(start(), out(11, 0, "abc"));
    s = reduce(s, out(12, 10, "xyz"));
    expect(s.output["2"].gap).toBe(true);
    expect(s.output["2"].stdout.text).toBe("abc");
    s = reduce(s, { kind: "output", jobId: "2", stdout: "abcdefghijxyz", stderr: "", truncated: false });
    expect(s.output["2"]).toEqual({
      stdout: { text: "abcdefghijxyz", next: 13 },
      stderr: { text: "", next: 0 },
      gap: false,
      truncated: false,
    });
  });

  it("a REST answer older than the live output does not replace it", () => {
    let s = reduce(start(), out(11, 0, "abcdef"));
    const before = s;
    s = reduce(s, { kind: "output", jobId: "2", stdout: "abc", stderr: "", truncated: false });
    expect(s).toBe(before);
  });
});

describe("REST fallback", () => {
  it("replaces lists, forgets the sequence and reads pricing from health", () => {
    const s = reduce(initialState(), {
      kind: "rest",
      jobs: [job("5", "pending")],
      workers: [worker("w2")],
      health: { status: "healthy", metrics: { pricing: { cost_per_core: "0.2", cost_per_100mb_ram: "0.01" } } },
      now: 3,
    });
    expect(s.source).toBe("rest");
    expect(s.seq).toBeNull();
    expect(s.loaded).toBe(true);
    expect(s.jobs[0].job_id).toBe("5");
    expect(s.pricing?.cost_per_core).toBe("0.2");
  });

  it("a partial REST answer keeps the lists it did not bring", () => {
    const s = reduce(start(), { kind: "rest", health: { status: "healthy" }, now: 3 });
    expect(s.jobs.length).toBe(2);
    expect(s.workers.length).toBe(1);
  });

  it("a single job from REST never moves a job backwards", () => {
    let s = reduce(start(), ev({ type: "job.updated", seq: 11, job: job("2", "completed") }));
    s = reduce(s, { kind: "job", job: job("2", "running"), now: 5 });
    expect(s.jobs.find((j) => j.job_id === "2")!.status).toBe("completed");
    // ... but a new attempt after a lost worker does.
    s = reduce(s, { kind: "job", job: job("2", "pending", { attempts: 2 }), now: 6 });
    expect(s.jobs.find((j) => j.job_id === "2")!.status).toBe("pending");
  });

  it("isNotOlder orders by attempt, then by status", () => {
    expect(isNotOlder(job("1", "running", { attempts: 1 }), job("1", "completed", { attempts: 1 }))).toBe(true);
    expect(isNotOlder(job("1", "completed", { attempts: 1 }), job("1", "assigned", { attempts: 1 }))).toBe(false);
    expect(isNotOlder(job("1", "running", { attempts: 1 }), job("1", "pending", { attempts: 2 }))).toBe(true);
  });
});
