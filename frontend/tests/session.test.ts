// Credential handling, query keys without credentials, roles and navigation, the seller's agent
// command, and the buyer's own submit.
import { QueryClient } from "@tanstack/react-query";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { agentCommand, agentUrl, shQuote } from "../src/lib/agentCommand";
import { api } from "../src/lib/api";
import {
  authHeaders,
  getCredential,
  guessKind,
  parseStored,
  setCredential,
  STORAGE_KEY,
  subscribeCredential,
  wsAuthMessage,
} from "../src/lib/credential";
import { isLiveKey } from "../src/lib/liveCache";
import { canOpen, navFor, rolesOf } from "../src/lib/roles";
import { resetCacheOnCredentialChange } from "../src/lib/session";
import type { Me } from "../src/lib/types";
import { EXAMPLE_FORM, validateSubmit } from "../src/lib/validate";
import { auditQuery } from "../src/queries/audit";
import { creditsQuery } from "../src/queries/credits";
import { healthQuery, pricingQuery } from "../src/queries/health";
import { jobKeys, jobListQuery, jobOutputQuery, jobQuery, recentJobsQuery } from "../src/queries/jobs";
import { keysQuery } from "../src/queries/keys";
import { ledgerQuery } from "../src/queries/ledger";
import { meQuery } from "../src/queries/me";
import { userQuery, usersQuery } from "../src/queries/users";
import { workersQuery } from "../src/queries/workers";

const ADMIN = "admin-token-0123456789abcdef";
const KEY = "co_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg";

class MemStorage {
  m = new Map<string, string>();
  getItem(k: string) {
    return this.m.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.m.set(k, v);
  }
  removeItem(k: string) {
    this.m.delete(k);
  }
}
let storage: MemStorage;
beforeEach(() => {
  storage = new MemStorage();
  vi.stubGlobal("sessionStorage", storage);
});
afterEach(() => {
  setCredential(null);
  vi.unstubAllGlobals();
});

describe("credential", () => {
  it("is kept in sessionStorage and forgotten on sign-out", () => {
    setCredential({ kind: "key", token: `  ${KEY} ` });
    expect(getCredential()).toEqual({ kind: "key", token: KEY });
    expect(parseStored(storage.getItem(STORAGE_KEY))).toEqual({ kind: "key", token: KEY });
    setCredential(null);
    expect(getCredential()).toBeNull();
    expect(storage.getItem(STORAGE_KEY)).toBeNull();
  });

  it("notifies only when it really changes", () => {
    const seen: number[] = [];
    const off = subscribeCredential(() => seen.push(1));
    setCredential({ kind: "admin", token: ADMIN });
    setCredential({ kind: "admin", token: ADMIN });
    setCredential({ kind: "key", token: ADMIN });
    setCredential({ kind: "key", token: "   " }); // blank: signed out
    off();
    expect(seen.length).toBe(3);
    expect(getCredential()).toBeNull();
  });

  it("ignores malformed stored values", () => {
    for (const raw of [null, "", "x", '{"kind":"root","token":"a"}', '{"kind":"key","token":""}', '{"kind":"key"}'])
      expect(parseStored(raw)).toBeNull();
  });

  it("travels as Bearer for keys and X-Admin-Token for the admin token", () => {
    expect(authHeaders(null)).toEqual({});
    expect(authHeaders({ kind: "key", token: KEY })).toEqual({ Authorization: `Bearer ${KEY}` });
    expect(authHeaders({ kind: "admin", token: ADMIN })).toEqual({ "X-Admin-Token": ADMIN });
    expect(wsAuthMessage({ kind: "key", token: KEY })).toEqual({ type: "auth", bearer: KEY });
    expect(wsAuthMessage({ kind: "admin", token: ADMIN })).toEqual({ type: "auth", token: ADMIN });
    expect(guessKind(KEY)).toBe("key");
    expect(guessKind(ADMIN)).toBe("admin");
  });

  it("REST calls carry it in a header, never in the URL", async () => {
    const calls: { url: string; headers: Record<string, string> }[] = [];
    vi.stubGlobal("fetch", async (url: string, init: { headers: Record<string, string> }) => {
      calls.push({ url, headers: init.headers });
      return new Response("[]", { status: 200 });
    });
    setCredential({ kind: "key", token: KEY });
    await api("/api/v1/jobs?limit=100");
    setCredential(null);
    await api("/api/v1/jobs");
    expect(calls[0].url).not.toContain(KEY);
    expect(calls[0].headers.Authorization).toBe(`Bearer ${KEY}`);
    expect(calls[0].headers["X-Admin-Token"]).toBeUndefined();
    expect(calls[1].headers.Authorization).toBeUndefined();
  });

  it("a new credential resets the query cache: nothing fetched for the old one remains", async () => {
    const qc = new QueryClient();
    const off = resetCacheOnCredentialChange(qc);
    setCredential({ kind: "admin", token: ADMIN });
    qc.setQueryData(["jobs", "detail", "j1"], { job_id: "j1", code: "secret" });
    qc.setQueryData(jobKeys.recent(), [{ job_id: "j1", command: "secret" }]);
    setCredential({ kind: "key", token: KEY });
    await Promise.resolve();
    expect(qc.getQueryData(["jobs", "detail", "j1"])).toBeUndefined();
    // The live list is cleared but kept (the live client refills it from the new session).
    expect(qc.getQueryData(jobKeys.recent())).toBeUndefined();
    expect(qc.getQueryCache().find({ queryKey: jobKeys.recent() })).toBeDefined();
    expect(qc.getQueryCache().find({ queryKey: ["jobs", "detail", "j1"] })).toBeUndefined();
    expect(isLiveKey(jobKeys.recent()) && isLiveKey(["workers"]) && !isLiveKey(jobKeys.detail("j1"))).toBe(true);
    off();
  });
});

describe("query keys", () => {
  it("never hold the credential", () => {
    setCredential({ kind: "key", token: KEY });
    const keys = [
      recentJobsQuery(),
      jobListQuery({ status: "running", buyer_id: "alice" }),
      jobQuery("j1"),
      jobOutputQuery("j1"),
      workersQuery(),
      healthQuery(),
      pricingQuery(),
      creditsQuery("alice"),
      ledgerQuery("alice"),
      usersQuery(),
      userQuery("alice"),
      keysQuery("alice"),
      auditQuery(),
      meQuery(true),
    ].map((o) => JSON.stringify(o.queryKey));
    for (const k of keys) {
      expect(k).not.toContain(KEY);
      expect(k).not.toContain("Bearer");
    }
    setCredential({ kind: "admin", token: ADMIN });
    expect(JSON.stringify(meQuery(true).queryKey)).not.toContain(ADMIN);
    // One module per resource: each resource has its own first key segment.
    expect(new Set(keys.map((k) => JSON.parse(k)[0]))).toEqual(
      new Set(["jobs", "workers", "health", "pricing", "credits", "ledger", "users", "keys", "audit", "me"]),
    );
  });
});

const me = (extra: Partial<Me>): Me => ({ user_id: "alice", is_admin: false, disabled: false, ...extra });

describe("roles and navigation", () => {
  const labels = (roles: ReturnType<typeof rolesOf>) => navFor(roles).map((n) => n.label);

  it("anonymous: the public pages only", () => {
    const r = rolesOf(null, undefined);
    expect(r).toEqual(["anonymous"]);
    expect(labels(r)).toEqual(["Overview", "Jobs", "Workers"]);
    for (const p of ["/submit", "/credits", "/keys", "/selling", "/users", "/audit"]) expect(canOpen(p, r)).toBe(false);
    expect(canOpen("/jobs/abc", r)).toBe(true);
  });

  it("a buy key: submit, credits and keys, nothing of admins or sellers", () => {
    const r = rolesOf({ kind: "key", token: KEY }, me({ key: { key_id: "k1", name: "n", scopes: ["buy"] } }));
    expect(r).toEqual(["buyer"]);
    expect(labels(r)).toEqual(["Overview", "Jobs", "Submit", "Workers", "Credits", "API keys"]);
    expect(canOpen("/users", r)).toBe(false);
    expect(canOpen("/selling", r)).toBe(false);
  });

  it("a sell key: selling, no submit", () => {
    const r = rolesOf({ kind: "key", token: KEY }, me({ key: { key_id: "k1", name: "n", scopes: ["sell"] } }));
    expect(r).toEqual(["seller"]);
    expect(labels(r)).toContain("Selling");
    expect(canOpen("/submit", r)).toBe(false);
    expect(canOpen("/audit", r)).toBe(false);
  });

  it("a key without scope information counts as buy and sell (the API's default)", () => {
    expect(rolesOf({ kind: "key", token: KEY }, me({}))).toEqual(["buyer", "seller"]);
  });

  it("admin: the admin token, or an admin user's admin key; an admin user's buy key is not", () => {
    const all = ["Overview", "Jobs", "Submit", "Workers", "Selling", "Credits", "API keys", "Users", "Audit log"];
    expect(labels(rolesOf({ kind: "admin", token: ADMIN }, me({ user_id: "admin", is_admin: true })))).toEqual(all);
    expect(
      rolesOf({ kind: "key", token: KEY }, me({ is_admin: true, key: { key_id: "k", name: "n", scopes: ["admin"] } })),
    ).toEqual(["admin"]);
    expect(
      rolesOf({ kind: "key", token: KEY }, me({ is_admin: true, key: { key_id: "k", name: "n", scopes: ["buy"] } })),
    ).toEqual(["buyer"]);
    // A key claiming the admin scope for a user who is not an admin gives no admin pages.
    expect(rolesOf({ kind: "key", token: KEY }, me({ key: { key_id: "k", name: "n", scopes: ["admin"] } }))).toEqual(
      [],
    );
  });

  it("no roles while /me is loading", () => {
    expect(rolesOf({ kind: "key", token: KEY }, undefined)).toEqual([]);
    expect(labels([])).toEqual(["Overview", "Jobs", "Workers"]);
  });
});

describe("seller's agent command and buyer's own submit", () => {
  it("names the agent URL, the key and the worker id, quoted for a shell", () => {
    expect(agentUrl({ protocol: "http:", host: "127.0.0.1:8000" })).toBe("ws://127.0.0.1:8000/ws/agent");
    expect(agentUrl({ protocol: "https:", host: "market.example" })).toBe("wss://market.example/ws/agent");
    expect(agentCommand("ws://h:1/ws/agent", KEY, "alice-1")).toBe(
      `COORDINATOR_URL=ws://h:1/ws/agent AGENT_KEY=${KEY} WORKER_ID=alice-1 cacheout-agent`,
    );
    expect(shQuote("it's")).toBe(`'it'\\''s'`);
  });

  it("a buyer's submit has no buyer_id; an admin's names one", () => {
    const own = validateSubmit({ ...EXAMPLE_FORM, buyer_id: "" }, { selfBuyer: true });
    expect(own.ok && "buyer_id" in own.body).toBe(false);
    const admin = validateSubmit({ ...EXAMPLE_FORM, buyer_id: "" });
    expect(admin.ok).toBe(false);
  });
});
