// The signed-in credential: a user's API key (sent as `Authorization: Bearer`) or the
// coordinator's admin token (sent as `X-Admin-Token`). Entered once, kept in sessionStorage (gone
// when the tab closes), never put in a URL or a query cache key. The dashboard socket gets it in
// an `auth` message right after it opens (browsers cannot set headers on a WebSocket).
import { useSyncExternalStore } from "react";

export type CredentialKind = "key" | "admin";
export interface Credential {
  kind: CredentialKind;
  token: string;
}

export const STORAGE_KEY = "cacheout.credential";
/** User keys start with this prefix (coordinator/coord_auth.h COORD_KEY_PREFIX). */
export const KEY_PREFIX = "co_";

const listeners = new Set<() => void>();

/** Parses what sessionStorage holds; anything malformed counts as signed out. */
export function parseStored(raw: string | null): Credential | null {
  if (!raw) return null;
  try {
    const v = JSON.parse(raw) as Partial<Credential>;
    if ((v.kind === "key" || v.kind === "admin") && typeof v.token === "string" && v.token.trim() !== "")
      return { kind: v.kind, token: v.token.trim() };
  } catch {
    /* not ours */
  }
  return null;
}

function read(): Credential | null {
  try {
    return parseStored(sessionStorage.getItem(STORAGE_KEY));
  } catch {
    return null;
  }
}

let current: Credential | null = typeof window === "undefined" ? null : read();

export function getCredential(): Credential | null {
  return current;
}

/** Signs in with @c, or signs out with null. Listeners run only when something changed. */
export function setCredential(c: Credential | null): void {
  const next = c && c.token.trim() ? { kind: c.kind, token: c.token.trim() } : null;
  if (next?.kind === current?.kind && next?.token === current?.token) return;
  current = next;
  try {
    if (next) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next));
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    /* storage disabled: keep it in memory for this page */
  }
  for (const l of listeners) l();
}

export function subscribeCredential(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function useCredential(): Credential | null {
  return useSyncExternalStore(subscribeCredential, getCredential, getCredential);
}

/** The kind a pasted secret most likely is: user keys carry the key prefix. */
export function guessKind(token: string): CredentialKind {
  return token.trim().startsWith(KEY_PREFIX) ? "key" : "admin";
}

/** The REST headers that carry @c (none when signed out). */
export function authHeaders(c: Credential | null): Record<string, string> {
  if (!c) return {};
  return c.kind === "key" ? { Authorization: `Bearer ${c.token}` } : { "X-Admin-Token": c.token };
}

/**
 * The dashboard socket's `auth` message for @c: `token` carries the admin token (as before),
 * `bearer` a user key (the browser's stand-in for the upgrade's Authorization header).
 */
export function wsAuthMessage(c: Credential): { type: "auth"; token: string } | { type: "auth"; bearer: string } {
  return c.kind === "key" ? { type: "auth", bearer: c.token } : { type: "auth", token: c.token };
}
