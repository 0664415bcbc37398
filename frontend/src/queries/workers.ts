// Workers in the query cache: written by the live client (socket, or REST polling while the
// socket is down); components only read them.
import { queryOptions } from "@tanstack/react-query";
import { getWorkers } from "../lib/api";

export const workerKeys = {
  all: ["workers"] as const,
};

export const workersQuery = () =>
  queryOptions({
    queryKey: workerKeys.all,
    queryFn: ({ signal }) => getWorkers(signal),
    enabled: false,
    staleTime: Infinity,
    gcTime: Infinity,
  });
