// Who the signed-in credential is (GET /api/v1/me). The key is ["me"] alone: the cache is reset
// whenever the credential changes, so it never holds another credential's answer.
import { queryOptions } from "@tanstack/react-query";
import { ApiError, getMe } from "../lib/api";
import { getCredential } from "../lib/credential";
import type { Me } from "../lib/types";

export const meKeys = {
  all: ["me"] as const,
};

/** The built-in admin, for a coordinator that predates /api/v1/me (it answers 404). */
export const BUILTIN_ADMIN: Me = { user_id: "admin", is_admin: true, disabled: false };

export const meQuery = (signedIn: boolean) =>
  queryOptions({
    queryKey: meKeys.all,
    queryFn: async ({ signal }): Promise<Me> => {
      try {
        return await getMe(signal);
      } catch (e) {
        if (e instanceof ApiError && e.status === 404 && getCredential()?.kind === "admin") return BUILTIN_ADMIN;
        throw e;
      }
    },
    enabled: signedIn,
    staleTime: 60000,
    retry: false,
  });
