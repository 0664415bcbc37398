// Query options for a job's output artifacts (API.md "Files, artifacts, callbacks,
// description"): the list is server state owned by the TanStack Query cache; downloads go
// through fetch with the credential (a plain link would not carry the token).
import { queryOptions } from "@tanstack/react-query";
import { api, ApiError } from "../lib/api";
import { authHeaders, getCredential } from "../lib/credential";

export interface Artifact {
  path: string;
  size: number;
  sha256: string;
}

export const artifactsQuery = (jobId: string) =>
  queryOptions({
    queryKey: ["jobs", jobId, "artifacts"],
    queryFn: ({ signal }) => api<Artifact[]>(`/api/v1/jobs/${encodeURIComponent(jobId)}/artifacts`, { signal }),
  });

/** The URL of one artifact (each path segment encoded), or of the whole tar.gz when @path is null. */
export function artifactUrl(jobId: string, path: string | null): string {
  const base = `/api/v1/jobs/${encodeURIComponent(jobId)}/artifacts`;
  return path === null ? `${base}.tar.gz` : `${base}/${path.split("/").map(encodeURIComponent).join("/")}`;
}

/** Download @url with the credential and hand it to the browser as a file named @name. */
export async function downloadArtifact(url: string, name: string): Promise<void> {
  const res = await fetch(url, { headers: authHeaders(getCredential()) });
  if (!res.ok) throw new ApiError(res.status, `http_${res.status}`, `Download failed: ${res.status} ${res.statusText}`);
  const blob = await res.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 1000);
}
