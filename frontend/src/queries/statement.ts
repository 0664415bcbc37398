// A user's earnings and spending per day (self or admin); refreshed with its balance.
import { queryOptions } from "@tanstack/react-query";
import { getStatement } from "../lib/api";

export const statementKeys = {
  all: ["statement"] as const,
  user: (userId: string, days: number) => ["statement", userId, days] as const,
};

export const statementQuery = (userId: string, days = 30) =>
  queryOptions({
    queryKey: statementKeys.user(userId, days),
    queryFn: ({ signal }) => getStatement(userId, days, signal),
    enabled: userId !== "",
    retry: false,
  });
