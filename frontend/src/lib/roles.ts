// What the signed-in user may do, and so which pages the navigation offers. Derived from the
// credential and GET /api/v1/me (the key's scopes); the coordinator decides every request anyway,
// this only keeps the dashboard from offering what would be refused.
import type { Credential } from "./credential";
import type { Me } from "./types";

export type Role = "anonymous" | "buyer" | "seller" | "admin";

/** The roles of a session; empty while /me is loading for a signed-in credential. */
export function rolesOf(cred: Credential | null, me: Me | undefined): Role[] {
  if (!cred) return ["anonymous"];
  if (!me) return [];
  const scopes = me.key?.scopes ?? ["buy", "sell"]; // API.md: a key's scopes default to buy+sell
  if (me.is_admin && (cred.kind === "admin" || scopes.includes("admin"))) return ["admin"];
  const roles: Role[] = [];
  if (scopes.includes("buy")) roles.push("buyer");
  if (scopes.includes("sell")) roles.push("seller");
  return roles;
}

export interface NavItem {
  to: string;
  label: string;
  end?: boolean;
  /** Who sees it; admins see everything. */
  roles: Role[] | "all";
}

export const NAV: NavItem[] = [
  { to: "/", label: "Overview", end: true, roles: "all" },
  { to: "/jobs", label: "Jobs", roles: "all" },
  { to: "/submit", label: "Submit", roles: ["buyer"] },
  { to: "/workers", label: "Workers", roles: "all" },
  { to: "/selling", label: "Selling", roles: ["seller"] },
  { to: "/credits", label: "Credits", roles: ["buyer", "seller"] },
  { to: "/keys", label: "API keys", roles: ["buyer", "seller"] },
  { to: "/users", label: "Users", roles: ["admin"] },
  { to: "/audit", label: "Audit log", roles: ["admin"] },
];

export function allowed(item: Pick<NavItem, "roles">, roles: Role[]): boolean {
  if (item.roles === "all") return true;
  if (roles.includes("admin")) return true;
  return item.roles.some((r) => roles.includes(r));
}

/** The navigation for @roles, in order. */
export function navFor(roles: Role[]): NavItem[] {
  return NAV.filter((n) => allowed(n, roles));
}

/** Whether the page at @path is offered to @roles (unknown paths: yes, they show not-found). */
export function canOpen(path: string, roles: Role[]): boolean {
  const item = NAV.find((n) => n.to !== "/" && (path === n.to || path.startsWith(`${n.to}/`)));
  if (!item || item.to === "/jobs" || item.to === "/workers") return true;
  return allowed(item, roles);
}

export const ROLE_LABEL: Record<Role, string> = {
  anonymous: "Anonymous",
  buyer: "Buyer",
  seller: "Seller",
  admin: "Admin",
};
