// Health counts and pricing in the query cache: written by the live client (snapshot and
// health.updated, or REST polling); components only read them.
import { queryOptions } from "@tanstack/react-query";
import { getHealth } from "../lib/api";
import type { Pricing } from "../lib/types";

export const healthKeys = {
  health: ["health"] as const,
  pricing: ["pricing"] as const,
};

export const healthQuery = () =>
  queryOptions({
    queryKey: healthKeys.health,
    queryFn: ({ signal }) => getHealth(signal),
    enabled: false,
    staleTime: Infinity,
    gcTime: Infinity,
  });

export const pricingQuery = () =>
  queryOptions({
    queryKey: healthKeys.pricing,
    queryFn: async ({ signal }): Promise<Pricing | null> => (await getHealth(signal)).metrics?.pricing ?? null,
    enabled: false,
    staleTime: Infinity,
    gcTime: Infinity,
  });
