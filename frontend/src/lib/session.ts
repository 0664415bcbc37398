// The signed-in session: the credential, who it is (/me) and the roles that follow. Changing
// the credential resets the whole query cache (no answer given to one credential is shown to
// another; cache keys never hold the credential itself) and the live client starts a new socket
// session by itself.
import { useQuery, type QueryClient } from "@tanstack/react-query";
import { meQuery } from "../queries/me";
import { isLiveKey } from "./liveCache";
import { subscribeCredential, useCredential, type Credential } from "./credential";
import { rolesOf, type Role } from "./roles";
import type { Me } from "./types";

/**
 * Forgets every answer when the credential changes. Entries the live client feeds are reset (their
 * pages show "loading" until the new session's snapshot); all others are removed, so that pages
 * fetch them again when they render with the new credential, and nothing is refetched with
 * options of the old one (e.g. a signed-in-only query after signing out).
 */
export function resetCacheOnCredentialChange(qc: QueryClient): () => void {
  return subscribeCredential(() => {
    void qc.cancelQueries();
    qc.removeQueries({ predicate: (q) => !isLiveKey(q.queryKey) });
    void qc.resetQueries({ predicate: (q) => isLiveKey(q.queryKey) });
  });
}

export interface Session {
  credential: Credential | null;
  me: Me | undefined;
  /** The signed-in user's id; null when anonymous or not known yet. */
  userId: string | null;
  roles: Role[];
  loading: boolean;
  /** /me failed: the credential is wrong, revoked or disabled (401), or the coordinator is down. */
  error: Error | null;
  is: (r: Role) => boolean;
}

export function useSession(): Session {
  const credential = useCredential();
  const q = useQuery(meQuery(!!credential));
  const me = credential ? q.data : undefined;
  const roles = rolesOf(credential, me);
  return {
    credential,
    me,
    userId: me?.user_id ?? null,
    roles,
    loading: !!credential && q.isPending,
    error: credential ? q.error : null,
    is: (r) => roles.includes(r) || (r !== "anonymous" && roles.includes("admin")),
  };
}
