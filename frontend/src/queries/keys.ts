// A user's API keys (admin or self), without their tokens.
import { queryOptions } from "@tanstack/react-query";
import { getKeys } from "../lib/api";

export const keyKeys = {
  all: ["keys"] as const,
  user: (userId: string) => ["keys", userId] as const,
};

export const keysQuery = (userId: string) =>
  queryOptions({
    queryKey: keyKeys.user(userId),
    queryFn: ({ signal }) => getKeys(userId, signal),
    enabled: userId !== "",
    retry: false,
  });
