// The job page's artifact list: what the job left under /work/out, with downloads that carry
// the credential (fetch + blob).
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { artifactsQuery, artifactUrl, downloadArtifact } from "../queries/artifacts";
import { formatKb } from "../lib/format";
import { EmptyState, ErrorState, Spinner } from "./ui";

export function Artifacts({ jobId, truncated }: { jobId: string; truncated?: boolean }) {
  const q = useQuery(artifactsQuery(jobId));
  const [error, setError] = useState<string | null>(null);
  const download = (url: string, name: string) => {
    setError(null);
    downloadArtifact(url, name).catch((e: Error) => setError(e.message));
  };
  if (q.isPending) return <Spinner label="Loading artifacts" />;
  if (q.isError) return <ErrorState title="Artifacts cannot be loaded" message={q.error.message} />;
  if (q.data.length === 0)
    return <EmptyState title="No artifacts">Files the job writes under /work/out/ appear here.</EmptyState>;
  return (
    <div className="space-y-3">
      {truncated && (
        <p className="text-xs text-amber-700">Truncated: the job left more than the artifact limits allow.</p>
      )}
      {error && (
        <p role="alert" className="text-xs text-rose-700">
          {error}
        </p>
      )}
      <ul className="divide-y divide-slate-100 text-sm" aria-label="Artifacts">
        {q.data.map((a) => (
          <li key={a.path} className="flex items-center justify-between gap-3 py-2">
            <span className="truncate font-mono text-xs" title={`sha256 ${a.sha256}`}>
              {a.path}
            </span>
            <span className="flex shrink-0 items-center gap-3">
              <span className="text-xs text-slate-500">{formatKb(a.size / 1024)}</span>
              <button
                type="button"
                className="btn-secondary"
                onClick={() => download(artifactUrl(jobId, a.path), a.path.split("/").pop() ?? a.path)}
              >
                Download
              </button>
            </span>
          </li>
        ))}
      </ul>
      <button
        type="button"
        className="btn-secondary"
        onClick={() => download(artifactUrl(jobId, null), `${jobId}-artifacts.tar.gz`)}
      >
        Download all (.tar.gz)
      </button>
    </div>
  );
}
