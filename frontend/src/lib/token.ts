// The admin token: entered once, kept in sessionStorage (gone when the tab closes), sent as
// X-Admin-Token on REST requests and in the first message on the dashboard socket.
import { useSyncExternalStore } from "react";

const KEY = "cacheout.adminToken";
const listeners = new Set<() => void>();

function read(): string {
  try {
    return sessionStorage.getItem(KEY) ?? "";
  } catch {
    return "";
  }
}

let current = typeof window === "undefined" ? "" : read();

export function getToken(): string {
  return current;
}

export function setToken(token: string): void {
  current = token.trim();
  try {
    if (current) sessionStorage.setItem(KEY, current);
    else sessionStorage.removeItem(KEY);
  } catch {
    /* storage disabled: keep it in memory for this page */
  }
  for (const l of listeners) l();
}

export function subscribeToken(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function useToken(): string {
  return useSyncExternalStore(subscribeToken, getToken, getToken);
}
