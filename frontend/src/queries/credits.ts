// A user's balance (self or admin). credits.updated events from the socket overwrite it.
import { queryOptions } from "@tanstack/react-query";
import { getCredits } from "../lib/api";

export const creditKeys = {
  all: ["credits"] as const,
  user: (userId: string) => ["credits", userId] as const,
};

export const creditsQuery = (userId: string) =>
  queryOptions({
    queryKey: creditKeys.user(userId),
    queryFn: ({ signal }) => getCredits(userId, signal),
    enabled: userId !== "",
    retry: false,
  });
