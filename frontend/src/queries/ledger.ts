// A user's ledger (self or admin), newest first. Invalidated when the user's balance changes.
import { queryOptions } from "@tanstack/react-query";
import { getLedger } from "../lib/api";

export const ledgerKeys = {
  all: ["ledger"] as const,
  user: (userId: string) => ["ledger", userId] as const,
};

export const ledgerQuery = (userId: string) =>
  queryOptions({
    queryKey: ledgerKeys.user(userId),
    queryFn: ({ signal }) => getLedger(userId, signal),
    enabled: userId !== "",
    retry: false,
  });
