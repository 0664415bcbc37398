// Input files for the submit form: drop files (or pick them); each goes to /work/<name> as
// base64 (the submit field "files" of API.md).  At most 100 files and 8 MiB in all.
import { useState, type DragEvent } from "react";

export type JobFiles = Record<string, { base64: string }>;

export const MAX_FILES = 100;
export const MAX_FILES_BYTES = 8 * 1024 * 1024;

function toBase64(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ""));
    r.onerror = () => reject(r.error ?? new Error("cannot read the file"));
    r.readAsDataURL(file);
  });
}

/** Add @picked to @current (same name: replaced); an error message when a limit is passed. */
export async function addFiles(current: { name: string; size: number; base64: string }[], picked: File[]) {
  const next = current.filter((f) => !picked.some((p) => p.name === f.name));
  for (const f of picked) next.push({ name: f.name, size: f.size, base64: await toBase64(f) });
  const total = next.reduce((n, f) => n + f.size, 0);
  if (next.length > MAX_FILES) return { files: current, error: `At most ${MAX_FILES} files` };
  if (total > MAX_FILES_BYTES) return { files: current, error: "At most 8 MiB of files in all" };
  return { files: next, error: null };
}

export function FileDrop({ onChange }: { onChange: (files: JobFiles) => void }) {
  const [files, setFiles] = useState<{ name: string; size: number; base64: string }[]>([]);
  const [over, setOver] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const take = (picked: File[]) => {
    void addFiles(files, picked).then((r) => {
      setError(r.error);
      setFiles(r.files);
      onChange(Object.fromEntries(r.files.map((f) => [f.name, { base64: f.base64 }])));
    });
  };
  const remove = (name: string) => {
    const next = files.filter((f) => f.name !== name);
    setFiles(next);
    onChange(Object.fromEntries(next.map((f) => [f.name, { base64: f.base64 }])));
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    take(Array.from(e.dataTransfer.files));
  };
  return (
    <div className="space-y-2">
      <div
        role="group"
        aria-label="Input files"
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
        className={`rounded-lg border-2 border-dashed p-4 text-center text-sm ${over ? "border-sky-400 bg-sky-50" : "border-slate-200"}`}
      >
        Drop files here, or{" "}
        <label className="cursor-pointer text-sky-700 underline">
          choose files
          <input type="file" multiple className="sr-only" onChange={(e) => take(Array.from(e.target.files ?? []))} />
        </label>
        <div className="text-xs text-slate-500">
          Written to /work/&lt;name&gt; before the job starts (at most 100 files, 8 MiB).
        </div>
      </div>
      {error && (
        <p role="alert" className="text-xs text-rose-700">
          {error}
        </p>
      )}
      {files.length > 0 && (
        <ul className="text-xs" aria-label="Chosen files">
          {files.map((f) => (
            <li key={f.name} className="flex justify-between gap-2">
              <span className="font-mono">{f.name}</span>
              <button
                type="button"
                className="text-rose-700"
                onClick={() => remove(f.name)}
                aria-label={`Remove ${f.name}`}
              >
                remove
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
