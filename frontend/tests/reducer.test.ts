// Socket messages and REST answers applied to the query cache (src/lib/liveCache.ts, with the
// pure functions of src/lib/reducer.ts), and the client's recorded job timelines.
import { QueryClient } from "@tanstack/react-query";
import { describe, expect, it } from "vitest";
import { applyEvent, applyRest, applySnapshot, setLiveDefaults } from "../src/lib/liveCache";
import {
  applyOutputChunk,
  emptyOutput,
  initialSeq,
  isNotOlder,
  MAX_JOBS,
  restOutput,
  type JobOutput,
  type SeqState,
} from "../src/lib/reducer";
import { pendingReasonLabel } from "../src/lib/format";
import { TimelineStore } from "../src/lib/timeline";
import type { CreditBalance, EventMsg, Health, Job, Pricing, SnapshotMsg, Worker } from "../src/lib/types";
import { creditKeys } from "../src/queries/credits";
import { healthKeys } from "../src/queries/health";
import { jobKeys, storeJob } from "../src/queries/jobs";
import { workerKeys } from "../src/queries/workers";

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

/** A query cache fed like the live client feeds it, with a timeline recorder on a fake clock. */
class Feed {
  qc = new QueryClient();
  seq: SeqState = initialSeq();
  clock = 0;
  timelines = new TimelineStore();
  constructor() {
    setLiveDefaults(this.qc);
    this.timelines.watch(this.qc, () => this.clock);
  }
  snap(m: SnapshotMsg) {
    this.seq = applySnapshot(this.qc, this.seq, m);
    return this;
  }
  ev(m: EventMsg) {
    this.seq = applyEvent(this.qc, this.seq, m);
    return this;
  }
  jobs = () => this.qc.getQueryData<Job[]>(jobKeys.recent()) ?? [];
  job = (id: string) => this.jobs().find((j) => j.job_id === id);
  workers = () => this.qc.getQueryData<Worker[]>(workerKeys.all) ?? [];
  seen = (id: string) => this.timelines.get(id).map((t) => t.status);
}

const start = () => new Feed().snap(snapshot(10, [job("1", "pending"), job("2", "running")], [worker("w1")]));

describe("snapshot", () => {
  it("replaces lists, sets the sequence and the pricing", () => {
    const f = start();
    expect(f.seq.seq).toBe(10);
    expect(f.jobs().map((j) => j.job_id)).toEqual(["2", "1"]); // newest first
    expect(f.workers().map((w) => w.worker_id)).toEqual(["w1"]);
    expect(f.qc.getQueryData<Pricing>(healthKeys.pricing)?.cost_per_core).toBe(0.1);
  });

  it("a later snapshot drops jobs and workers it does not list", () => {
    const f = start().snap(snapshot(3, [job("7", "completed")], []));
    expect(f.jobs().map((j) => j.job_id)).toEqual(["7"]);
    expect(f.workers()).toEqual([]);
    expect(f.seq.seq).toBe(3);
  });

  it("events before the first snapshot are ignored", () => {
    const f = new Feed().ev({ type: "job.updated", seq: 1, job: job("1", "running") });
    expect(f.qc.getQueryData(jobKeys.recent())).toBeUndefined();
    expect(f.seq.seq).toBeNull();
  });
});

describe("events in sequence", () => {
  it("job.updated updates a known job, its open detail, and the recorded timeline", () => {
    const f = start();
    f.qc.setQueryData(jobKeys.detail("1"), job("1", "pending", { code: "print(1)" }));
    f.clock = 1000;
    f.ev({ type: "job.updated", seq: 11, job: job("1", "running", { assigned_worker: "w1" }) });
    expect(f.seq.seq).toBe(11);
    expect(f.job("1")?.status).toBe("running");
    expect(f.job("1")?.assigned_worker).toBe("w1");
    const detail = f.qc.getQueryData<Job>(jobKeys.detail("1"));
    expect(detail?.status).toBe("running");
    expect(detail?.code).toBe("print(1)"); // fields the event lacks are kept
    expect(f.seen("1")).toEqual(["pending", "running"]);
    expect(f.timelines.get("1")[1].at).toBe(1000);
  });

  it("does not create a detail entry for a job no page shows", () => {
    const f = start().ev({ type: "job.updated", seq: 11, job: job("3", "pending") });
    expect(f.qc.getQueryData(jobKeys.detail("3"))).toBeUndefined();
    expect(f.jobs().map((j) => j.job_id)).toEqual(["3", "2", "1"]);
  });

  it("keeps at most MAX_JOBS jobs, dropping the oldest", () => {
    const f = new Feed().snap(snapshot(0));
    for (let i = 1; i <= MAX_JOBS + 5; i++)
      f.ev({
        type: "job.updated",
        seq: i,
        job: job(String(i), "pending", { created_at: new Date(i * 1000).toISOString() }),
      });
    expect(f.jobs().length).toBe(MAX_JOBS);
    expect(f.jobs()[0].job_id).toBe(String(MAX_JOBS + 5));
    expect(f.job("1")).toBeUndefined();
  });

  it("worker.updated upserts and worker.removed deletes", () => {
    const f = start()
      .ev({ type: "worker.updated", seq: 11, worker: worker("w1", "offline") })
      .ev({ type: "worker.updated", seq: 12, worker: worker("w0") });
    expect(f.workers().map((w) => `${w.worker_id}:${w.status}`)).toEqual(["w0:idle", "w1:offline"]);
    f.ev({ type: "worker.removed", seq: 13, worker_id: "w1" });
    expect(f.workers().map((w) => w.worker_id)).toEqual(["w0"]);
  });

  it("credits.updated and health.updated replace their values", () => {
    const f = start()
      .ev({ type: "credits.updated", seq: 11, user_id: "b", credits: 99.5, held: 0.5 })
      .ev({ type: "health.updated", seq: 12, health: { status: "healthy", jobs: { running: 4 } } });
    expect(f.qc.getQueryData<CreditBalance>(creditKeys.user("b"))).toEqual({ user_id: "b", credits: 99.5, held: 0.5 });
    expect(f.qc.getQueryData<Health>(healthKeys.health)?.jobs?.running).toBe(4);
    expect(f.seq.seq).toBe(12);
  });

  it("ignores duplicates and replays (seq not above the last)", () => {
    const f = start().ev({ type: "job.updated", seq: 11, job: job("1", "running") });
    const before = f.jobs();
    f.ev({ type: "job.updated", seq: 11, job: job("1", "failed") });
    f.ev({ type: "job.updated", seq: 5, job: job("1", "failed") });
    expect(f.jobs()).toBe(before);
    expect(f.seq.seq).toBe(11);
  });
});

describe("pending reasons", () => {
  const reason = (code: string, message = `because ${code}`) => ({ code, message });

  it("a job.updated with another pending_reason replaces the one shown in the list and the open page", () => {
    const f = new Feed().snap(snapshot(10, [job("1", "pending", { pending_reason: reason("no_agents") })]));
    f.qc.setQueryData(jobKeys.detail("1"), job("1", "pending", { code: "x", pending_reason: reason("no_agents") }));
    f.ev({ type: "job.updated", seq: 11, job: job("1", "pending", { pending_reason: reason("no_agent_with_image") }) });
    expect(f.job("1")?.pending_reason?.code).toBe("no_agent_with_image");
    expect(f.qc.getQueryData<Job>(jobKeys.detail("1"))?.pending_reason).toEqual(reason("no_agent_with_image"));
    // Same status, same attempt: a newer reason from a REST answer is taken too (not "older").
    applyRest(f.qc, {
      jobs: [job("1", "pending", { pending_reason: reason("running_limit", "max_running_jobs = 1") })],
    });
    expect(f.job("1")?.pending_reason?.message).toBe("max_running_jobs = 1");
    // Placed: the reason goes away.
    f.ev({ type: "job.updated", seq: 12, job: job("1", "assigned", { pending_reason: null, attempts: 1 }) });
    expect(f.job("1")?.pending_reason).toBeNull();
    expect(f.qc.getQueryData<Job>(jobKeys.detail("1"))?.pending_reason).toBeNull();
  });

  it("labels every code of the contract and shows unknown codes as they are", () => {
    for (const code of [
      "no_agents",
      "no_agent_with_image",
      "exceeds_largest_agent",
      "no_agent_with_reputation",
      "no_agent_within_price",
      "waiting_for_capacity",
      "running_limit",
      "waiting_for_distinct_owner",
    ])
      expect(pendingReasonLabel(code)).not.toBe(code);
    expect(pendingReasonLabel("running_limit")).toMatch(/limit/);
    expect(pendingReasonLabel("something_new")).toBe("something_new");
  });
});

describe("gaps", () => {
  it("a skipped sequence number asks for a resync and applies nothing", () => {
    const f = start().ev({ type: "job.updated", seq: 12, job: job("1", "completed") });
    expect(f.seq).toEqual({ seq: 10, needResync: true, gaps: 1 });
    expect(f.job("1")?.status).toBe("pending");
  });

  it("events after a gap are ignored until the next snapshot, which restores the stream", () => {
    const f = start()
      .ev({ type: "job.updated", seq: 12, job: job("1", "completed") })
      .ev({ type: "job.updated", seq: 13, job: job("2", "completed") });
    expect(f.job("2")?.status).toBe("running");
    expect(f.seq.gaps).toBe(1);
    f.snap(snapshot(20, [job("1", "completed"), job("2", "running")]));
    expect(f.seq.needResync).toBe(false);
    expect(f.job("1")?.status).toBe("completed");
    expect(f.seen("1")).toEqual(["pending", "completed"]);
    f.ev({ type: "job.updated", seq: 21, job: job("2", "completed") });
    expect(f.seq.seq).toBe(21);
    expect(f.job("2")?.status).toBe("completed");
  });
});

describe("job output", () => {
  it("appends chunks in order per stream, counting UTF-8 bytes", () => {
    let o = applyOutputChunk(undefined, "stdout", 0, "Hello ");
    o = applyOutputChunk(o, "stdout", 6, "World\n");
    o = applyOutputChunk(o, "stderr", 0, "warn\n");
    expect(o.stdout).toEqual({ text: "Hello World\n", next: 12 });
    expect(o.stderr.text).toBe("warn\n");
    expect(applyOutputChunk(undefined, "stdout", 0, "é").stdout.next).toBe(2);
    expect(applyOutputChunk(undefined, "stdout", 0, "\ufffd", 1).stdout.next).toBe(1); // the server's byte count wins
  });

  it("drops the overlapping part of a chunk and whole repeats", () => {
    let o = applyOutputChunk(emptyOutput(), "stdout", 0, "abc");
    o = applyOutputChunk(o, "stdout", 1, "bcde");
    expect(o.stdout.text).toBe("abcde");
    expect(applyOutputChunk(o, "stdout", 0, "abc")).toBe(o);
  });

  it("a missing chunk flags a gap, and the whole REST answer then replaces the output", () => {
    let o = applyOutputChunk(undefined, "stdout", 0, "abc");
    o = applyOutputChunk(o, "stdout", 10, "xyz");
    expect(o.gap).toBe(true);
    expect(o.stdout.text).toBe("abc");
    expect(restOutput(o, { stdout: "abcdefghijxyz", stderr: "", truncated: false })).toEqual({
      stdout: { text: "abcdefghijxyz", next: 13 },
      stderr: { text: "", next: 0 },
      gap: false,
      truncated: false,
    });
  });

  it("a REST answer older than the live output does not replace it", () => {
    const o = applyOutputChunk(undefined, "stdout", 0, "abcdef");
    expect(restOutput(o, { stdout: "abc", stderr: "" })).toBe(o);
  });

  it("chunks reach the cache only for an output a page holds", () => {
    const f = start().ev({ type: "job.output", seq: 11, job_id: "2", stream: "stdout", offset: 0, data: "x" });
    expect(f.qc.getQueryData(jobKeys.output("2"))).toBeUndefined();
    f.qc.setQueryData(jobKeys.output("2"), emptyOutput());
    f.ev({ type: "job.output", seq: 12, job_id: "2", stream: "stdout", offset: 0, data: "Hello" });
    expect(f.qc.getQueryData<JobOutput>(jobKeys.output("2"))?.stdout.text).toBe("Hello");
  });
});

describe("REST answers", () => {
  it("the polling fallback replaces lists and reads pricing from health", () => {
    const f = new Feed();
    applyRest(f.qc, {
      jobs: [job("5", "pending")],
      workers: [worker("w2")],
      health: { status: "healthy", metrics: { pricing: { cost_per_core: "0.2", cost_per_100mb_ram: "0.01" } } },
    });
    expect(f.jobs()[0].job_id).toBe("5");
    expect(f.workers()[0].worker_id).toBe("w2");
    expect(f.qc.getQueryData<Pricing>(healthKeys.pricing)?.cost_per_core).toBe("0.2");
  });

  it("a partial REST answer keeps the lists it did not bring", () => {
    const f = start();
    applyRest(f.qc, { health: { status: "healthy" } });
    expect(f.jobs().length).toBe(2);
    expect(f.workers().length).toBe(1);
  });

  it("a job from a REST answer (submit, cancel) never moves a job backwards, but a new attempt does", () => {
    const f = start().ev({ type: "job.updated", seq: 11, job: job("2", "completed") });
    storeJob(f.qc, job("2", "running"));
    expect(f.job("2")?.status).toBe("completed");
    storeJob(f.qc, job("2", "pending", { attempts: 2 }));
    expect(f.job("2")?.status).toBe("pending");
    expect(f.qc.getQueryData<Job>(jobKeys.detail("2"))?.status).toBe("pending");
  });

  it("the submit answer starts a job's recorded timeline before any page shows it", () => {
    const f = start();
    f.clock = 5;
    storeJob(f.qc, job("9", "pending"));
    f.clock = 6;
    f.ev({ type: "job.updated", seq: 11, job: job("9", "completed") });
    expect(f.seen("9")).toEqual(["pending", "completed"]);
  });

  it("isNotOlder orders by attempt, then by status", () => {
    expect(isNotOlder(job("1", "running", { attempts: 1 }), job("1", "completed", { attempts: 1 }))).toBe(true);
    expect(isNotOlder(job("1", "completed", { attempts: 1 }), job("1", "assigned", { attempts: 1 }))).toBe(false);
    expect(isNotOlder(job("1", "running", { attempts: 1 }), job("1", "pending", { attempts: 2 }))).toBe(true);
  });
});
