// The audit log (admin), newest first.
import { queryOptions } from "@tanstack/react-query";
import { getAudit } from "../lib/api";

export const auditKeys = {
  all: ["audit"] as const,
};

export const auditQuery = () =>
  queryOptions({
    queryKey: auditKeys.all,
    queryFn: ({ signal }) => getAudit(signal),
    retry: false,
    refetchInterval: 10000,
  });
